import CloakCrypto
public import CloakProtocol

// Hooks for the simulator's assistants (PROTOCOL.md §29): what an assistant's client can
// decrypt, compared by digest (the simulator never handles a key), and a modified assistant
// client that skips its own checks. Not part of the app-facing API.
extension ClientEngine {
    /// A 16-byte digest of this client's key of `conversation` in `epoch` (nil: it has none and
    /// cannot derive one), for comparing what two clients can decrypt without handling keys.
    public func conversationKeyDigest(_ conversation: ConversationID, epoch: UInt64) -> [UInt8]? {
        guard let key = core.membership.conversationKey(conversation, epoch: epoch) else { return nil }
        var bytes = key.secret.copyBytes()
        defer { SecretBytes.wipe(&bytes) }
        return BLAKE2b.hash(bytes, outputByteCount: 16)
    }

    /// The conversation keys received sealed as such (an assistant's), by conversation and
    /// epoch, in order.
    public func heldConversationKeys() -> [(conversation: ConversationID, epoch: UInt64)] {
        core.membership.keyring.scopedKeys.keys.map { ($0.conversation, $0.epoch) }
            .sorted { ($0.epoch, $0.conversation) < ($1.epoch, $1.conversation) }
    }

    /// Turns this assistant's client hostile: it stops refusing what its grant does not allow,
    /// and takes the keys `accomplice` (a device of the account) holds for `conversations`, as
    /// if they had leaked. What it then writes is for receivers to refuse.
    public func playHostileAssistant(keysFrom accomplice: ClientEngine?, conversations: [ConversationID]) throws(ClientError) {
        core.checksOwnAssistantRights = false
        guard let accomplice else { return }
        var leaked: [(conversation: ConversationID, epoch: UInt64, key: SymmetricKey)] = []
        for epoch in accomplice.heldEpochs() {
            for conversation in conversations {
                guard let key = accomplice.core.membership.conversationKey(conversation, epoch: epoch) else { continue }
                leaked.append((conversation, epoch, key))
            }
        }
        let core = core
        let cipher = core.cipher
        try core.store.write { tx in try core.membership.addScopedKeys(leaked, tx, cipher: cipher) }
    }
}
