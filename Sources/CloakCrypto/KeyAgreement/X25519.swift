import CSodium

/// An X25519 key pair (RFC 7748): each device's key for receiving sealed keys.
///
/// ```swift
/// let device = X25519PrivateKey()
/// let shared = try device.sharedSecret(with: peerPublicKey)   // throws for low-order peers
/// ```
public struct X25519PrivateKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// Secret scalar length.
    public static let byteCount = 32

    /// The 32-byte secret scalar (kept by a `SecretStore`).
    public let secret: SecretBytes
    /// The matching public key.
    public let publicKey: X25519PublicKey

    /// Wraps a 32-byte secret scalar and computes its public key.
    public init(secret: SecretBytes) throws(CryptoError) {
        guard secret.count == Self.byteCount else {
            throw .invalidKeyLength(expected: Self.byteCount, actual: secret.count)
        }
        try Sodium.ensure()
        var publicBytes = [UInt8](repeating: 0, count: 32)
        secret.withUnsafeBytes { s in
            _ = crypto_scalarmult_base(&publicBytes, s.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        self.secret = secret
        self.publicKey = X25519PublicKey(validated: publicBytes)
    }

    /// A fresh random key pair (from the operating system's randomness).
    public init() { self.init(using: SystemRandom()) }

    /// A fresh random key pair from `source` (SPI: the simulator and tests).
    @_spi(Randomness)
    public init(using source: any RandomSource) {
        let secret = SecretBytes.random(count: Self.byteCount, using: source)
        do { try self.init(secret: secret) } catch { preconditionFailure("32-byte scalar rejected: \(error)") }
    }

    /// The raw X25519 shared secret with `peer`. Throws ``CryptoError/lowOrderPublicKey`` when
    /// the result would be all zeros (a low-order peer key: libsodium returns -1; ADV-01).
    /// Hash the result before using it as a key.
    public func sharedSecret(with peer: X25519PublicKey) throws(CryptoError) -> SecretBytes {
        var status: Int32 = 0
        let shared = SecretBytes(count: 32) { out in
            secret.withUnsafeBytes { s in
                status = crypto_scalarmult(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    s.baseAddress!.assumingMemoryBound(to: UInt8.self), peer.bytes)
            }
        }
        guard status == 0 else { throw .lowOrderPublicKey }
        return shared
    }

    /// Never shows the secret.
    public var description: String { "X25519PrivateKey(public: \(publicKey), secret redacted)" }
    /// Never shows the secret.
    public var debugDescription: String { description }
    /// Reflection shows only the public key.
    public var customMirror: Mirror { Mirror(self, children: ["publicKey": publicKey], displayStyle: .struct) }
}

/// An X25519 public key (32 bytes).
public struct X25519PublicKey: Sendable, Hashable, CustomStringConvertible {
    /// Encoded length.
    public static let byteCount = 32

    /// The encoded u-coordinate.
    public let bytes: [UInt8]

    /// Wraps 32 bytes (any u-coordinate encodes; low-order points are caught at agreement).
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidKeyLength(expected: Self.byteCount, actual: bytes.count)
        }
        self.bytes = bytes
    }

    init(validated bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Short hex prefix, enough to tell keys apart in logs.
    public var description: String { "X25519PublicKey(\(Hex.encode(bytes.prefix(6)))…)" }
}

/// Anonymous public-key encryption to one device: libsodium's sealed box construction
/// (`crypto_box_seal`), used to wrap account data keys for each device.
///
/// ```swift
/// let wrapped = SealedBox.seal(epochKey.secret.copyBytes(), to: device.publicKey)
/// let key = try SealedBox.open(wrapped, with: device)
/// ```
///
/// The output is `epk ‖ crypto_box_easy(m, nonce = BLAKE2b-192(epk ‖ pk), pk, esk)`, exactly
/// what `crypto_box_seal` produces and `crypto_box_seal_open` opens. Sealing is done here step
/// by step only so the ephemeral key can come from an injected ``RandomSource`` and protocol
/// vectors regenerate byte for byte; it interoperates with libsodium in both directions
/// (CloakCryptoTests opens our boxes with `crypto_box_seal_open` and libsodium's with ours).
public enum SealedBox {
    /// Bytes added to the message: ephemeral public key (32) and MAC (16).
    public static let overheadByteCount = 48

    /// Encrypts `message` so only the holder of `recipient`'s private key can read it.
    /// Low-order recipient keys are refused.
    public static func seal(_ message: [UInt8], to recipient: X25519PublicKey) throws(CryptoError) -> [UInt8] {
        try seal(message, to: recipient, using: SystemRandom())
    }

    /// ``seal(_:to:)`` with the ephemeral seed drawn from `random` (SPI: vectors, simulator).
    @_spi(Randomness)
    public static func seal(
        _ message: [UInt8], to recipient: X25519PublicKey, using random: any RandomSource
    ) throws(CryptoError) -> [UInt8] {
        try Sodium.ensure()
        let seed = SecretBytes.random(count: 32, using: random)
        var ephemeralPublic = [UInt8](repeating: 0, count: 32)
        let ephemeralSecret = SecretBytes(count: 32) { esk in
            seed.withUnsafeBytes { s in
                _ = crypto_box_seed_keypair(
                    &ephemeralPublic, esk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    s.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        var nonceHasher = BLAKE2b.Hasher(outputByteCount: 24)
        nonceHasher.update(ephemeralPublic)
        nonceHasher.update(recipient.bytes)
        let nonce = nonceHasher.finalize()
        var status: Int32 = 0
        let boxed = [UInt8].filled(count: message.count + 16) { out in
            ephemeralSecret.withUnsafeBytes { esk in
                withBytes(message) { m in
                    status = crypto_box_easy(
                        out, m, UInt64(message.count), nonce, recipient.bytes,
                        esk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        guard status == 0 else { throw .lowOrderPublicKey }
        return ephemeralPublic + boxed
    }

    /// Opens a sealed box with the recipient's key pair.
    public static func open(_ sealed: [UInt8], with recipient: X25519PrivateKey) throws(CryptoError) -> [UInt8] {
        try Sodium.ensure()
        guard sealed.count >= overheadByteCount else {
            throw .ciphertextTooShort(minimum: overheadByteCount, actual: sealed.count)
        }
        var status: Int32 = 0
        let message = [UInt8].filled(count: sealed.count - overheadByteCount) { out in
            recipient.secret.withUnsafeBytes { sk in
                status = crypto_box_seal_open(
                    out, sealed, UInt64(sealed.count), recipient.publicKey.bytes,
                    sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard status == 0 else { throw .sealedBoxOpenFailed }
        return message
    }
}

extension SealedBox {
    /// Opens a sealed box straight into zeroing storage, for wrapped keys.
    public static func openSecret(_ sealed: [UInt8], with recipient: X25519PrivateKey) throws(CryptoError)
        -> SecretBytes
    {
        try Sodium.ensure()
        guard sealed.count >= overheadByteCount else {
            throw .ciphertextTooShort(minimum: overheadByteCount, actual: sealed.count)
        }
        var status: Int32 = 0
        let message = SecretBytes(count: sealed.count - overheadByteCount) { out in
            var scratch: UInt8 = 0
            let target = out.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? withUnsafeMutablePointer(to: &scratch) { $0 }
            recipient.secret.withUnsafeBytes { sk in
                status = crypto_box_seal_open(
                    target, sealed, UInt64(sealed.count), recipient.publicKey.bytes,
                    sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard status == 0 else { throw .sealedBoxOpenFailed }
        return message
    }
}
