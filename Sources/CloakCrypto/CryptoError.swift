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
}
