/// Subkey derivation from a root key, bound to a purpose, a subject and an epoch.
///
/// ```swift
/// let conversationKey = KeyDerivation.derive(
///     from: epochKey, purpose: .conversation, subject: conversationID.bytes, epoch: 3)
/// ```
///
/// libsodium 1.0.18 has no HKDF, and `crypto_kdf` takes only an 8-byte context and a 64-bit id,
/// too small for a 16-byte conversation id. Cloak therefore uses keyed BLAKE2b as the PRF
/// (BLAKE2 was designed to be a PRF when keyed; RFC 7693 §1):
///
///     subkey = BLAKE2b-256(key: root, message: "cloak.v1.kdf" ‖ LE64(|purpose|) ‖ purpose
///                           ‖ LE64(|subject|) ‖ subject ‖ LE64(epoch))
///
/// Every input is length-prefixed, so distinct (purpose, subject, epoch) triples hash distinct
/// messages, and keys for different purposes or conversations are independent (ADV-23, ADV-24;
/// `KeyDerivationTests` checks pairwise distinctness). PROTOCOL.md gives the byte layout.
public enum KeyDerivation {
    static let domain: [UInt8] = Array("cloak.v1.kdf".utf8)

    /// What a derived key is for. The raw value is the exact purpose string that is hashed.
    public struct Purpose: RawRepresentable, Hashable, Sendable {
        /// The purpose string, hashed as UTF-8.
        public let rawValue: String
        /// Creates a purpose; new purposes must be added to PROTOCOL.md.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Per-conversation content key (change sets and snapshots).
        public static let conversation = Purpose(rawValue: "conversation")
        /// The AEAD key of a change set, derived from the conversation key.
        public static let changeSetAEAD = Purpose(rawValue: "change-set-aead")
        /// The AEAD key of a snapshot, derived from the conversation key.
        public static let snapshotAEAD = Purpose(rawValue: "snapshot-aead")
        /// The account library document's key.
        public static let library = Purpose(rawValue: "library")
        /// A device's local storage key for a given table.
        public static let localStorage = Purpose(rawValue: "local-storage")
        /// Recovery-key wrapping.
        public static let recovery = Purpose(rawValue: "recovery")
        /// Pairing: key that encrypts the new device's bundle in the mailbox.
        public static let pairing = Purpose(rawValue: "pairing")
    }

    /// Derives a 32-byte subkey. Deterministic: equal inputs give equal keys.
    public static func derive(from root: SymmetricKey, purpose: Purpose, subject: [UInt8] = [], epoch: UInt64 = 0)
        -> SymmetricKey
    {
        var bytes = deriveBytes(from: root, purpose: purpose, subject: subject, epoch: epoch)
        defer { SecretBytes.wipe(&bytes) }
        return SymmetricKey(unchecked: SecretBytes(copying: bytes))
    }

    /// The message that is hashed (exposed for protocol vectors).
    public static func input(purpose: Purpose, subject: [UInt8], epoch: UInt64) -> [UInt8] {
        let purposeBytes = Array(purpose.rawValue.utf8)
        var message = domain
        message += UInt64(purposeBytes.count).littleEndianBytes + purposeBytes
        message += UInt64(subject.count).littleEndianBytes + subject
        message += epoch.littleEndianBytes
        return message
    }

    private static func deriveBytes(from root: SymmetricKey, purpose: Purpose, subject: [UInt8], epoch: UInt64)
        -> [UInt8]
    {
        var hasher = BLAKE2b.Hasher(outputByteCount: SymmetricKey.byteCount, key: root.secret)
        hasher.update(input(purpose: purpose, subject: subject, epoch: epoch))
        return hasher.finalize()
    }
}
