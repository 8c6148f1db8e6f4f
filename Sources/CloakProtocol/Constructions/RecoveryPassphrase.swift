public import CloakCrypto
import Foundation

/// The parameters of a passphrase enrollment (`RecoveryBlob.kdf_parameters`, kind `0x03`,
/// PROTOCOL.md §22): the server's OPRF key version and the Argon2id cost and salt.
///
///     params = 0x03 ‖ LE32(key version) ‖ LE32(ops) ‖ LE32(memory KiB) ‖ salt (16)     (29 bytes)
///
/// The server keeps them with the account and hands them out only inside a counted
/// `RecoveryEvaluation`, so neither an outsider nor a thief of the server's OPRF keys alone
/// holds the salt that a guess must be checked against.
public struct RecoveryEnrollment: Sendable, Equatable {
    /// The kind byte.
    public static let kind: UInt8 = 0x03
    /// Encoded length.
    public static let encodedByteCount = 29

    /// The server's OPRF key version the passphrase was evaluated under.
    public let keyVersion: UInt32
    /// Argon2id passes, memory and salt (floors and ceilings enforced).
    public let argon2: PasswordKDFParameters

    /// Parameters for a new enrollment: Cloak's default cost and a fresh salt.
    public init(keyVersion: UInt32) {
        self.init(keyVersion: keyVersion, argon2: .recommended())
    }

    /// Parameters with an explicit Argon2id part.
    public init(keyVersion: UInt32, argon2: PasswordKDFParameters) {
        self.keyVersion = keyVersion
        self.argon2 = argon2
    }

    /// The 29 bytes stored in the recovery blob.
    public var encoded: [UInt8] {
        [Self.kind] + keyVersion.littleEndianBytes + argon2.opsLimit.littleEndianBytes
            + argon2.memoryKiB.littleEndianBytes + argon2.salt
    }

    /// Decodes and enforces the Argon2id floors and ceilings: a server cannot weaken (or
    /// inflate) them (ADV-25). Another kind is refused.
    public init(decoding bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.encodedByteCount else {
            throw .malformedEncoding("passphrase enrollment parameters must be \(Self.encodedByteCount) bytes")
        }
        guard bytes[0] == Self.kind else { throw .unsupportedPasswordAlgorithm(bytes[0]) }
        func le32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        keyVersion = le32(1)
        argon2 = try PasswordKDFParameters(opsLimit: le32(5), memoryKiB: le32(9), salt: Array(bytes[13...]))
    }
}

/// Passphrase recovery over the server's oblivious PRF (RFC 9497 ristretto255-SHA512, mode 0;
/// PROTOCOL.md §22). The passphrase never leaves the device and the server's key never leaves
/// the server; a guess costs one counted answer from the server and one Argon2id.
///
///     p          = UTF-8(NFKC(passphrase)), trimmed, inner white space runs as one U+0020
///     x          = "cloak.v1.recovery.oprf-input\0" ‖ account (32) ‖ p
///     key info   = "cloak.v1.recovery.oprf-key\0" ‖ LE32(key version) ‖ account (32)
///     y          = OPRF output (64 bytes) for x under k = DeriveKeyPair(seed of the version, key info)
///     s          = Argon2id13(password: y, salt, ops, memory, 32 bytes)
///     root       = BLAKE2b-256(key: s, "cloak.v1.recovery.root\0" ‖ y ‖ account ‖ params)
///
/// and the recovery keys from `root` as for words (``RecoveryKeys/init(root:)``).
///
/// ```swift
/// let bytes = try RecoveryPassphrase.normalized(typed)
/// let blind = try OPRF.blind(RecoveryPassphrase.oprfInput(account: a, passphrase: bytes))
/// // … send blind.blindedElement, receive Z and the enrollment parameters …
/// let y = try blind.finalize(evaluatedElement: OPRF.Element(validating: z))
/// let keys = try RecoveryPassphrase.keys(oprfOutput: y, account: a, enrollment: params)
/// ```
public enum RecoveryPassphrase {
    /// Longest normalised passphrase, in bytes.
    public static let byteCountMax = 1024

    /// The passphrase's bytes: NFKC, trimmed, every inner run of white space one space, so the
    /// same passphrase typed on two keyboards gives the same bytes. Empty or longer than
    /// ``byteCountMax`` bytes throws.
    public static func normalized(_ passphrase: String) throws(CryptoError) -> SecretBytes {
        let folded = passphrase.precomposedStringWithCompatibilityMapping
        let words = folded.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace })
        var bytes: [UInt8] = []
        defer { SecretBytes.wipe(&bytes) }
        for (index, word) in words.enumerated() {
            if index > 0 { bytes.append(0x20) }
            bytes += Array(String(String.UnicodeScalarView(word)).utf8)
        }
        guard !bytes.isEmpty, bytes.count <= byteCountMax else {
            throw .malformedEncoding("a recovery passphrase is 1 to \(byteCountMax) bytes")
        }
        return SecretBytes(copying: bytes)
    }

    /// The OPRF's private input for `account` (the caller wipes it after blinding).
    public static func oprfInput(account: AccountID, passphrase: SecretBytes) -> [UInt8] {
        var input = Domain.recoveryOPRFInput.bytes
        // Room for all of it first: a growing array would leave copies of the passphrase behind.
        input.reserveCapacity(input.count + 32 + passphrase.count)
        input += account.bytes
        passphrase.withUnsafeBytes { input.append(contentsOf: $0) }
        return input
    }

    /// The info the server derives the account's OPRF key with (RFC 9497 DeriveKeyPair).
    public static func keyInfo(account: AccountID, keyVersion: UInt32) -> [UInt8] {
        Domain.recoveryOPRFKey.bytes + keyVersion.littleEndianBytes + account.bytes
    }

    /// The recovery keys from the OPRF output, under the enrollment's parameters.
    public static func keys(oprfOutput y: SecretBytes, account: AccountID, enrollment: RecoveryEnrollment)
        throws(CryptoError) -> RecoveryKeys
    {
        RecoveryKeys(root: try root(oprfOutput: y, account: account, enrollment: enrollment))
    }

    /// The recovery root: `BLAKE2b-256(key: Argon2id(y, params), domain ‖ y ‖ account ‖ params)`
    /// (§22; the vectors list it).
    package static func root(oprfOutput y: SecretBytes, account: AccountID, enrollment: RecoveryEnrollment)
        throws(CryptoError) -> SymmetricKey
    {
        let stretched = try PasswordKDF.deriveKey(password: y, parameters: enrollment.argon2)
        var hasher = BLAKE2b.Hasher(outputByteCount: 32, key: stretched.secret)
        hasher.update(Domain.recoveryRoot.bytes)
        y.withUnsafeBytes { hasher.update($0) }
        hasher.update(account.bytes)
        hasher.update(enrollment.encoded)
        var root = hasher.finalize()
        defer { SecretBytes.wipe(&root) }
        return try SymmetricKey(bytes: root)
    }
}
