import CSodium

/// Ed25519 signatures (RFC 8032) through libsodium, whose verifier is strict: it rejects
/// non-canonical `S` (malleability), small-order and non-canonical public keys and `R`
/// (ADV-22; Wycheproof's Ed25519 file runs through ``Ed25519PublicKey/isValidSignature(_:for:)``).
///
/// ```swift
/// let key = Ed25519PrivateKey()                        // random
/// let signature = key.signature(for: message)
/// guard key.publicKey.isValidSignature(signature, for: message) else { ... }
/// ```
public struct Ed25519PrivateKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// Seed length (the RFC 8032 private key).
    public static let seedByteCount = 32
    /// Signature length.
    public static let signatureByteCount = 64

    /// The 32-byte seed everything else derives from; this is what a `SecretStore` keeps.
    public let seed: SecretBytes
    // libsodium's 64-byte secret key (seed ‖ public key), cached so signing does not redo
    // the scalar multiplication.
    private let expanded: SecretBytes
    /// The public key.
    public let publicKey: Ed25519PublicKey

    /// Derives the key pair from a 32-byte seed.
    public init(seed: SecretBytes) throws(CryptoError) {
        guard seed.count == Self.seedByteCount else {
            throw .invalidSeedLength(expected: Self.seedByteCount, actual: seed.count)
        }
        try Sodium.ensure()
        var publicBytes = [UInt8](repeating: 0, count: 32)
        let expanded = SecretBytes(count: 64) { sk in
            seed.withUnsafeBytes { s in
                _ = crypto_sign_seed_keypair(
                    &publicBytes, sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    s.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        self.seed = seed
        self.expanded = expanded
        self.publicKey = Ed25519PublicKey(validated: publicBytes)
    }

    /// A fresh random key pair (the seed comes from the operating system).
    public init() { self.init(using: SystemRandom()) }

    /// A fresh random key pair whose seed comes from `source` (SPI: the simulator and tests).
    @_spi(Randomness)
    public init(using source: any RandomSource) {
        // A 32-byte seed is always valid, so this cannot throw.
        let seed = SecretBytes.random(count: Self.seedByteCount, using: source)
        do { try self.init(seed: seed) } catch { preconditionFailure("32-byte seed rejected: \(error)") }
    }

    /// Signs `message` (deterministic: equal inputs give equal signatures).
    public func signature(for message: [UInt8]) -> [UInt8] {
        [UInt8].filled(count: Self.signatureByteCount) { out in
            expanded.withUnsafeBytes { sk in
                withBytes(message) { m in
                    _ = crypto_sign_detached(
                        out, nil, m, UInt64(message.count), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
    }

    /// Never shows the key.
    public var description: String { "Ed25519PrivateKey(public: \(publicKey), secret redacted)" }
    /// Never shows the key.
    public var debugDescription: String { description }
    /// Reflection shows only the public key.
    public var customMirror: Mirror { Mirror(self, children: ["publicKey": publicKey], displayStyle: .struct) }
}

/// An Ed25519 public key (32 bytes).
public struct Ed25519PublicKey: Sendable, Hashable, CustomStringConvertible {
    /// Encoded length.
    public static let byteCount = 32

    /// The encoded point.
    public let bytes: [UInt8]

    /// Wraps 32 bytes. Validity of the point is checked by `verify`, which libsodium performs
    /// strictly; here only the length is checked.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidKeyLength(expected: Self.byteCount, actual: bytes.count)
        }
        self.bytes = bytes
    }

    init(validated bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// True when `signature` is a valid, canonical signature of `message` by this key.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard signature.count == Ed25519PrivateKey.signatureByteCount else { return false }
        _ = Sodium.ready
        return withBytes(message) { m in
            crypto_sign_verify_detached(signature, m, UInt64(message.count), bytes) == 0
        }
    }

    /// Throwing form of ``isValidSignature(_:for:)``.
    public func verify(_ signature: [UInt8], for message: [UInt8]) throws(CryptoError) {
        guard isValidSignature(signature, for: message) else { throw .invalidSignature }
    }

    /// Short hex prefix, enough to tell keys apart in logs.
    public var description: String { "Ed25519PublicKey(\(Hex.encode(bytes.prefix(6)))…)" }
}
