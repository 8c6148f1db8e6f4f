import CloakCrypto
import CloakProtocol

/// The account's epoch keys this device holds, and the per-conversation keys derived from them
/// (cached: derivation is two keyed BLAKE2b calls, and every change set needs one). An
/// assistant holds no epoch key: only the conversation keys of its scope, each sealed to it
/// (``scopedKeys``, PROTOCOL.md §29), from which it can derive nothing else.
struct Keyring: Sendable {
    private(set) var epochKeys: [UInt64: SymmetricKey] = [:]
    /// Conversation keys received as such (an assistant's).
    private(set) var scopedKeys: [ConversationKeyID: SymmetricKey] = [:]
    private var conversationKeys: [ConversationKeyID: SymmetricKey] = [:]
    private var changeSetKeys: [ConversationKeyID: SymmetricKey] = [:]

    struct ConversationKeyID: Hashable, Sendable {
        let conversation: ConversationID
        let epoch: UInt64
    }

    mutating func add(_ key: SymmetricKey, epoch: UInt64) {
        epochKeys[epoch] = key
    }

    func has(epoch: UInt64) -> Bool { epochKeys[epoch] != nil }

    /// Adds a conversation key received sealed (an assistant's).
    mutating func addScoped(_ key: SymmetricKey, conversation: ConversationID, epoch: UInt64) {
        scopedKeys[ConversationKeyID(conversation: conversation, epoch: epoch)] = key
    }

    /// Whether change sets of `conversation` in `epoch` can be opened and sealed here.
    func has(conversation: ConversationID, epoch: UInt64) -> Bool {
        epochKeys[epoch] != nil || scopedKeys[ConversationKeyID(conversation: conversation, epoch: epoch)] != nil
    }

    var newestEpoch: UInt64? { epochKeys.keys.max() }

    mutating func conversationKey(_ conversation: ConversationID, epoch: UInt64) -> SymmetricKey? {
        let id = ConversationKeyID(conversation: conversation, epoch: epoch)
        if let cached = conversationKeys[id] ?? scopedKeys[id] { return cached }
        guard let epochKey = epochKeys[epoch] else { return nil }
        let key = ConversationKeys.conversationKey(epochKey: epochKey, conversation: conversation, epoch: epoch)
        conversationKeys[id] = key
        return key
    }

    /// The key change sets of `conversation` are sealed with in `epoch` (derived from the
    /// conversation key, cached: deriving allocates locked memory, a system call per key).
    mutating func changeSetKey(_ conversation: ConversationID, epoch: UInt64) -> SymmetricKey? {
        let id = ConversationKeyID(conversation: conversation, epoch: epoch)
        if let cached = changeSetKeys[id] { return cached }
        guard let conversationKey = conversationKey(conversation, epoch: epoch) else { return nil }
        let key = ConversationKeys.changeSetKey(conversationKey: conversationKey, conversation: conversation, epoch: epoch)
        changeSetKeys[id] = key
        return key
    }
}
