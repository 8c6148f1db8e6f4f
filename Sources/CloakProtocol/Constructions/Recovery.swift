@_spi(Randomness) public import CloakCrypto

/// Account recovery keys (PROTOCOL.md §"Recovery"). The recovery key is a special member of
/// the device log (a `set_recovery` entry lists its public keys): epoch keys are sealed to it
/// like to any device, and it may sign exactly one kind of entry, adding a device. Its private
/// half is never stored anywhere; it is re-derived from what the user keeps:
///
///     root (words)      = BLAKE2b-256(key: 16-byte secret, "cloak.v1.recovery\0" ‖ "words")
///     root (passphrase) = from the server's OPRF output and Argon2id (``RecoveryPassphrase``)
///     signing seed      = KDF(root, "recovery", subject: "sign")
///     X25519 secret     = KDF(root, "recovery", subject: "agree")
///
/// ```swift
/// let secret = RecoverySecret.random()
/// let words = secret.words                       // 12 BIP-0039 words, shown once
/// let keys = try RecoverySecret(words: words).keys
/// ```
public struct RecoveryKeys: Sendable {
    /// Signs the `add device` entry of the recovering device, and authenticates to fetch the
    /// key envelopes sealed to the recovery key.
    public let signing: Ed25519PrivateKey
    /// Opens those envelopes.
    public let agreement: X25519PrivateKey
    /// The recovery key's id (BLAKE2b-128 of its Ed25519 public key).
    public var id: DeviceID { DeviceID(signingKey: signing.publicKey) }

    /// Derives both key pairs from a root key.
    public init(root: SymmetricKey) {
        let seed = KeyDerivation.derive(from: root, purpose: .recovery, subject: Array("sign".utf8))
        let agree = KeyDerivation.derive(from: root, purpose: .recovery, subject: Array("agree".utf8))
        // Both are 32-byte secrets by construction, which the key types always accept.
        guard let signing = try? Ed25519PrivateKey(seed: seed.secret),
            let agreement = try? X25519PrivateKey(secret: agree.secret)
        else { preconditionFailure("32-byte derived keys rejected") }
        self.signing = signing
        self.agreement = agreement
    }

}

/// A random recovery secret, shown to the user as 12 BIP-0039 words (128 bits plus a 4-bit
/// SHA-256 checksum, exactly as BIP-0039 encodes 16 bytes of entropy).
public struct RecoverySecret: Sendable {
    /// The `kdf_parameters` value stored for word-based recovery.
    public static let wordsParameterMarker: [UInt8] = [0x02]

    let entropy: SecretBytes

    /// A fresh secret from the operating system's randomness.
    public static func random() -> RecoverySecret { random(using: SystemRandom()) }

    /// A fresh secret from `random` (a seeded source only in the simulator and tests).
    @_spi(Randomness)
    public static func random(using random: any RandomSource) -> RecoverySecret {
        RecoverySecret(entropy: SecretBytes.random(count: 16, using: random))
    }

    package init(entropy: SecretBytes) {
        self.entropy = entropy
    }

    /// Parses 12 words (case and extra spaces ignored). Throws for unknown words or a bad checksum.
    public init(words: String) throws(RecoveryError) {
        let list = words.lowercased().split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," }).map(String.init)
        guard list.count == 12 else { throw .wrongWordCount(list.count) }
        var bits: [Bool] = []
        for (position, word) in list.enumerated() {
            guard let index = Self.index[word] else { throw .unknownWord(position: position + 1) }
            for shift in (0..<11).reversed() { bits.append((index >> shift) & 1 == 1) }
        }
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<128 where bits[i] { bytes[i / 8] |= UInt8(0x80 >> (i % 8)) }
        defer { SecretBytes.wipe(&bytes) }
        let checksum = SHA256.hash(bytes)[0] >> 4
        var given: UInt8 = 0
        for i in 128..<132 { given = given << 1 | (bits[i] ? 1 : 0) }
        guard checksum == given else { throw .badChecksum }
        entropy = SecretBytes(copying: bytes)
    }

    /// The 12 words, space-separated.
    public var words: String {
        var bytes = entropy.copyBytes()
        defer { SecretBytes.wipe(&bytes) }
        var bits: [Bool] = []
        for byte in bytes { for shift in (0..<8).reversed() { bits.append((byte >> shift) & 1 == 1) } }
        let checksum = SHA256.hash(bytes)[0]
        for shift in (4..<8).reversed() { bits.append((checksum >> shift) & 1 == 1) }
        var out: [String] = []
        for w in 0..<12 {
            var index = 0
            for b in 0..<11 { index = index << 1 | (bits[w * 11 + b] ? 1 : 0) }
            out.append(BIP39Wordlist.english[index])
        }
        return out.joined(separator: " ")
    }

    /// The recovery keys this secret determines.
    public var keys: RecoveryKeys {
        var hasher = BLAKE2b.Hasher(outputByteCount: 32, key: entropy)
        hasher.update(Domain.recovery.bytes)
        hasher.update(Array("words".utf8))
        var root = hasher.finalize()
        defer { SecretBytes.wipe(&root) }
        // 32 bytes by construction.
        guard let key = try? SymmetricKey(bytes: root) else { preconditionFailure("32-byte root rejected") }
        return RecoveryKeys(root: key)
    }

    private static let index: [String: Int] = Dictionary(
        uniqueKeysWithValues: BIP39Wordlist.english.enumerated().map { ($1, $0) })
}

/// Why a recovery secret was refused.
public enum RecoveryError: Error, Equatable, Sendable {
    /// Not 12 words.
    case wrongWordCount(Int)
    /// The word at this 1-based position is not in the list (the word itself is never echoed).
    case unknownWord(position: Int)
    /// The words' checksum does not match (a typo).
    case badChecksum
}
