import CloakCrypto

/// Builds the canonical byte strings that are signed, hashed and used as AEAD associated data
/// (PROTOCOL.md §"Canonical bytes"). Fixed-width fields are written as-is, integers
/// little-endian, variable-length fields behind a LE64 length, so every layout parses one way.
///
/// ```swift
/// var w = CanonicalWriter(domain: .changeSetAD)
/// w.u8(1); w.fixed(accountID); w.u64(seq)
/// let bytes = w.bytes
/// ```
public struct CanonicalWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    /// Starts with the domain-separation string (ASCII, ending in a NUL byte so no domain is a
    /// prefix of another).
    public init(domain: Domain, reserving capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes += domain.bytes
    }

    /// Appends one byte.
    public mutating func u8(_ value: UInt8) { bytes.append(value) }
    /// Appends a little-endian UInt32.
    public mutating func u32(_ value: UInt32) { append(value) }
    /// Appends a little-endian UInt64.
    public mutating func u64(_ value: UInt64) { append(value) }
    /// Appends a fixed-length identifier or digest.
    public mutating func fixed(_ value: some FixedLengthBytes) {
        value.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }
    /// Appends raw bytes whose length the layout fixes.
    public mutating func raw(_ value: [UInt8]) { bytes += value }
    /// Appends raw bytes (a part of a larger buffer) whose length the layout fixes.
    public mutating func raw(_ value: ArraySlice<UInt8>) { bytes += value }

    /// Appends the integer's bytes from the stack: `littleEndianBytes` would build an array
    /// per integer, and a change set's signed message has six of them.
    private mutating func append(_ value: some FixedWidthInteger) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
    /// Appends LE64(length) then the bytes.
    public mutating func lengthPrefixed(_ value: [UInt8]) {
        u64(UInt64(value.count))
        bytes += value
    }
}

/// Domain-separation prefixes, one per signed, hashed or authenticated construction
/// (ADV-23: a signature or ciphertext made for one purpose never verifies for another).
public struct Domain: Sendable, Hashable {
    /// The prefix, ASCII plus a terminating 0x00.
    public let bytes: [UInt8]

    init(_ name: String) {
        bytes = Array(name.utf8) + [0]
    }

    /// Associated data of a change set.
    public static let changeSetAD = Domain("cloak.v1.change-set.ad")
    /// Signed message of a change set.
    public static let changeSetSignature = Domain("cloak.v1.change-set.sig")
    /// Associated data of a snapshot.
    public static let snapshotAD = Domain("cloak.v1.snapshot.ad")
    /// Signed message of a snapshot.
    public static let snapshotSignature = Domain("cloak.v1.snapshot.sig")
    /// Canonical device-log entry (signed and hashed).
    public static let deviceLogEntry = Domain("cloak.v1.device-log.entry")
    /// Authentication challenge response.
    public static let auth = Domain("cloak.v1.auth")
    /// Signed key envelope.
    public static let keyEnvelope = Domain("cloak.v1.key-envelope")
    /// Plaintext inside a key envelope's sealed box.
    public static let epochKey = Domain("cloak.v1.epoch-key")
    /// Pairing mailbox id.
    public static let pairingMailbox = Domain("cloak.v1.pairing.mailbox")
    /// Pairing short authentication string.
    public static let pairingSAS = Domain("cloak.v1.pairing.sas")
    /// Associated data of the pairing mailbox messages (offer, answer, result).
    public static let pairingBundle = Domain("cloak.v1.pairing.bundle")
    /// Checksum of a pairing payload's text (a typo is refused as one).
    public static let pairingText = Domain("cloak.v1.pairing.text")
    /// Recovery key derivation.
    public static let recovery = Domain("cloak.v1.recovery")
    /// A member's proof that it may read the device log before authenticating.
    public static let logAccess = Domain("cloak.v1.log-access")
    /// Per-account OPRF key info of passphrase recovery.
    public static let recoveryOPRFKey = Domain("cloak.v1.recovery.oprf-key")
    /// OPRF input of passphrase recovery.
    public static let recoveryOPRFInput = Domain("cloak.v1.recovery.oprf-input")
    /// Recovery root from the OPRF output and Argon2id.
    public static let recoveryRoot = Domain("cloak.v1.recovery.root")
    /// Signed conversation-key envelope (a conversation's key sealed to an assistant).
    public static let conversationKeyEnvelope = Domain("cloak.v1.conversation-key-envelope")
    /// Plaintext inside a conversation-key envelope's sealed box.
    public static let conversationKey = Domain("cloak.v1.conversation-key")
    /// Checksum of an assistant invitation's text.
    public static let assistantInvitation = Domain("cloak.v1.assistant-invitation")
}
