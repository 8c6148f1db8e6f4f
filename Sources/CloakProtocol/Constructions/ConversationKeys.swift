public import CloakCrypto

/// The key schedule below an epoch key (PROTOCOL.md §"Key derivation"):
///
///     conversation key = KDF(epoch key,        "conversation",    conversation id, epoch)
///     change-set key   = KDF(conversation key, "change-set-aead", conversation id, epoch)
///     snapshot key     = KDF(conversation key, "snapshot-aead",   conversation id, epoch)
///
/// with `KDF` = ``KeyDerivation/derive(from:purpose:subject:epoch:)``. Change sets and
/// snapshots use different keys, so neither can be passed off as the other (ADV-23).
public enum ConversationKeys {
    /// The per-conversation key of `epoch`.
    public static func conversationKey(epochKey: SymmetricKey, conversation: ConversationID, epoch: UInt64)
        -> SymmetricKey
    {
        KeyDerivation.derive(from: epochKey, purpose: .conversation, subject: conversation.bytes, epoch: epoch)
    }

    /// The AEAD key of change sets.
    public static func changeSetKey(conversationKey: SymmetricKey, conversation: ConversationID, epoch: UInt64)
        -> SymmetricKey
    {
        KeyDerivation.derive(from: conversationKey, purpose: .changeSetAEAD, subject: conversation.bytes, epoch: epoch)
    }

    /// The AEAD key of snapshots.
    public static func snapshotKey(conversationKey: SymmetricKey, conversation: ConversationID, epoch: UInt64)
        -> SymmetricKey
    {
        KeyDerivation.derive(from: conversationKey, purpose: .snapshotAEAD, subject: conversation.bytes, epoch: epoch)
    }
}
