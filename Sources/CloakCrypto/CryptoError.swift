/// Every way a CloakCrypto operation can fail. Each case names the check that failed, so a
/// caller (and a log line) can say *what* was wrong without ever showing key material.
///
/// ```swift
/// do {
///     let plaintext = try XChaCha20Poly1305.open(box, key: key, associatedData: ad)
/// } catch .authenticationFailed {
///     // tampered ciphertext, nonce, associated data, or the wrong key
/// }
/// ```
public enum CryptoError: Error, Equatable, Sendable {
    /// libsodium could not initialise (no usable entropy source); nothing else can run.
    case sodiumUnavailable
    /// A key had the wrong number of bytes.
    case invalidKeyLength(expected: Int, actual: Int)
    /// A nonce had the wrong number of bytes (XChaCha20 needs exactly 24).
    case invalidNonceLength(expected: Int, actual: Int)
    /// A seed had the wrong number of bytes.
    case invalidSeedLength(expected: Int, actual: Int)
    /// A salt had the wrong number of bytes.
    case invalidSaltLength(expected: Int, actual: Int)
    /// A requested hash length is outside what BLAKE2b supports (16...64 bytes).
    case invalidHashLength(Int)
    /// A ciphertext is shorter than its authentication tag (or the sealed-box overhead).
    case ciphertextTooShort(minimum: Int, actual: Int)
    /// AEAD verification failed: the ciphertext, tag, nonce or associated data were altered,
    /// or the key is not the one that sealed it.
    case authenticationFailed
    /// The key-commitment tag did not match: the ciphertext was not produced under this key
    /// (checked before any decryption is attempted; ADV-20).
    case commitmentMismatch
    /// An Ed25519 signature did not verify under the given public key.
    case invalidSignature
    /// A public key is not a valid encoding for its algorithm.
    case invalidPublicKey
    /// An X25519 peer key has low order: the shared secret would be all zeros (ADV-01).
    case lowOrderPublicKey
    /// A sealed box could not be opened with this key pair.
    case sealedBoxOpenFailed
    /// Padding was malformed (no ISO/IEC 7816-4 marker where one must be).
    case invalidPadding
    /// A requested padded size is larger than the allowed maximum.
    case paddingTooLarge(requested: Int, maximum: Int)
    /// Argon2id parameters fall below Cloak's floors (a downgrade attempt; ADV-25).
    case passwordParametersBelowFloor
    /// Argon2id parameters exceed the ceilings a client will spend (a DoS attempt).
    case passwordParametersAboveCeiling
    /// An unknown password-hashing algorithm identifier.
    case unsupportedPasswordAlgorithm(UInt8)
    /// Argon2id could not run (usually: the memory limit could not be allocated).
    case passwordHashingFailed
    /// A secretstream chunk failed authentication (tampered, reordered or duplicated; ADV-43).
    case streamChunkRejected
    /// A secretstream ended without its final chunk: the payload was truncated (ADV-43).
    case streamTruncated
    /// A chunk was pushed or pulled after the final chunk.
    case streamAlreadyFinished
    /// A secretstream header had the wrong length.
    case invalidStreamHeader
    /// Encoded parameters or key material could not be decoded.
    case malformedEncoding(String)
    /// A group element had the wrong number of bytes (ristretto255 elements are 32).
    case invalidElementLength(expected: Int, actual: Int)
    /// Bytes that are not a canonical ristretto255 encoding (RFC 9496 §4.3.1): libsodium's
    /// `crypto_core_ristretto255_is_valid_point` refused them, or bit 255 is set (which
    /// libsodium 1.0.18 ignores instead of refusing).
    case invalidElementEncoding
    /// The group identity, refused wherever an OPRF element is received or produced
    /// (RFC 9497 §3.3; libsodium's validity check accepts it).
    case identityElement
    /// An OPRF input or key-info string is longer than its 2-byte length prefix allows.
    case inputTooLong(maximum: Int, actual: Int)
    /// An expand_message_xmd domain separation tag is empty or longer than 255 bytes.
    case invalidDomainSeparationTagLength(Int)
    /// An expand_message_xmd output length is zero or above what SHA-512 can expand to.
    case invalidExpandLength(Int)
    /// A scalar that must be non-zero was zero: the random source kept producing zero, key
    /// derivation ran out of counters (RFC 9497's DeriveKeyPairError), or an inversion of zero.
    case zeroScalar
    /// libsodium's SHA-512 reported a failure.
    case hashingFailed
}
