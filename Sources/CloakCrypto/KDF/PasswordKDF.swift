import CSodium

/// Argon2id parameters, stored next to the salt so they can be raised later without
/// breaking existing blobs.
///
/// ```swift
/// let params = PasswordKDFParameters.recommended()  // fresh salt
/// let key = try PasswordKDF.deriveKey(passphrase: "correct horse", parameters: params)
/// let stored = params.encoded           // 25 bytes: alg ‖ LE32 ops ‖ LE32 KiB ‖ salt
/// let again = try PasswordKDFParameters(decoding: stored)   // enforces the floors
/// ```
///
/// The server holds the encoded parameters with the wrapped recovery key, so a malicious
/// server could offer weaker ones; decoding refuses anything below ``floorOpsLimit`` /
/// ``floorMemoryKiB`` (ADV-25) and above the ceilings (a client must not be made to allocate
/// gigabytes).
public struct PasswordKDFParameters: Sendable, Equatable {
    /// Algorithm identifier for Argon2id v1.3 (the only one accepted).
    public static let argon2id13: UInt8 = 1
    /// Salt length (`crypto_pwhash_SALTBYTES`).
    public static let saltByteCount = 16
    /// Encoded length.
    public static let encodedByteCount = 1 + 4 + 4 + saltByteCount

    /// Lowest accepted number of passes (libsodium's INTERACTIVE level).
    public static let floorOpsLimit: UInt32 = 2
    /// Lowest accepted memory, in KiB: 64 MiB (libsodium's INTERACTIVE level).
    public static let floorMemoryKiB: UInt32 = 64 * 1024
    /// Highest accepted number of passes.
    public static let ceilingOpsLimit: UInt32 = 16
    /// Highest accepted memory, in KiB: 1 GiB (libsodium's SENSITIVE level).
    public static let ceilingMemoryKiB: UInt32 = 1024 * 1024

    /// Argon2id passes (`opslimit`).
    public let opsLimit: UInt32
    /// Memory in KiB (`memlimit / 1024`).
    public let memoryKiB: UInt32
    /// The random salt, unique per account and secret.
    public let salt: [UInt8]

    /// Creates parameters after checking floors, ceilings and salt length.
    public init(opsLimit: UInt32, memoryKiB: UInt32, salt: [UInt8]) throws(CryptoError) {
        guard salt.count == Self.saltByteCount else {
            throw .invalidSaltLength(expected: Self.saltByteCount, actual: salt.count)
        }
        guard opsLimit >= Self.floorOpsLimit, memoryKiB >= Self.floorMemoryKiB else {
            throw .passwordParametersBelowFloor
        }
        guard opsLimit <= Self.ceilingOpsLimit, memoryKiB <= Self.ceilingMemoryKiB else {
            throw .passwordParametersAboveCeiling
        }
        self.opsLimit = opsLimit
        self.memoryKiB = memoryKiB
        self.salt = salt
    }

    /// Cloak's default: 3 passes over 64 MiB with a fresh salt. See PROTOCOL.md for why
    /// (recovery runs rarely, on phones too; this is above OWASP's 19 MiB/2-pass minimum and
    /// costs roughly a quarter second on one core of the reference machine).
    public static func recommended() -> PasswordKDFParameters { recommended(using: SystemRandom()) }

    /// ``recommended()`` with the salt drawn from `random` (SPI: vectors and tests).
    @_spi(Randomness)
    public static func recommended(using random: any RandomSource) -> PasswordKDFParameters {
        PasswordKDFParameters(checked: 3, 64 * 1024, random.bytes(saltByteCount))
    }

    private init(checked ops: UInt32, _ kib: UInt32, _ salt: [UInt8]) {
        opsLimit = ops
        memoryKiB = kib
        self.salt = salt
    }

    /// `0x01 ‖ LE32(opsLimit) ‖ LE32(memoryKiB) ‖ salt`.
    public var encoded: [UInt8] {
        [Self.argon2id13] + opsLimit.littleEndianBytes + memoryKiB.littleEndianBytes + salt
    }

    /// Decodes and enforces the floors and ceilings.
    public init(decoding bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.encodedByteCount else {
            throw .malformedEncoding("password parameters must be \(Self.encodedByteCount) bytes")
        }
        guard bytes[0] == Self.argon2id13 else { throw .unsupportedPasswordAlgorithm(bytes[0]) }
        let ops = UInt32(bytes[1]) | UInt32(bytes[2]) << 8 | UInt32(bytes[3]) << 16 | UInt32(bytes[4]) << 24
        let kib = UInt32(bytes[5]) | UInt32(bytes[6]) << 8 | UInt32(bytes[7]) << 16 | UInt32(bytes[8]) << 24
        try self.init(opsLimit: ops, memoryKiB: kib, salt: Array(bytes[9...]))
    }
}

/// Passphrase → key with Argon2id (`crypto_pwhash`, ALG_ARGON2ID13).
public enum PasswordKDF {
    /// Derives a 32-byte key. The same passphrase and parameters always give the same key.
    public static func deriveKey(passphrase: String, parameters: PasswordKDFParameters) throws(CryptoError)
        -> SymmetricKey
    {
        var password = Array(passphrase.utf8)
        defer { SecretBytes.wipe(&password) }
        return try deriveKey(password: password, parameters: parameters)
    }

    /// Derives a 32-byte key from raw password bytes.
    public static func deriveKey(password: [UInt8], parameters: PasswordKDFParameters) throws(CryptoError)
        -> SymmetricKey
    {
        try deriveKey(password: SecretBytes(copying: password), parameters: parameters)
    }

    /// Derives a 32-byte key from a password held in zeroing storage, such as an OPRF output
    /// (PROTOCOL.md §22), so the password never sits in an ordinary array.
    public static func deriveKey(password: SecretBytes, parameters: PasswordKDFParameters) throws(CryptoError)
        -> SymmetricKey
    {
        try Sodium.ensure()
        var status: Int32 = 0
        let secret = SecretBytes(count: SymmetricKey.byteCount) { out in
            // SecretBytes always owns at least one byte, so even an empty password has the
            // non-null pointer crypto_pwhash wants.
            let p = password.storage.pointer.assumingMemoryBound(to: CChar.self)
            status = crypto_pwhash(
                out.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(SymmetricKey.byteCount),
                p, UInt64(password.count), parameters.salt,
                UInt64(parameters.opsLimit), Int(parameters.memoryKiB) * 1024, crypto_pwhash_ALG_ARGON2ID13)
        }
        guard status == 0 else { throw .passwordHashingFailed }
        return SymmetricKey(unchecked: secret)
    }
}
