/// Key-committing authenticated encryption: XChaCha20-Poly1305 plus a commitment tag.
///
/// ```swift
/// let sealed = CommittedAEAD.seal(plaintext, key: key, associatedData: ad)
/// let opened = try CommittedAEAD.open(sealed, key: key, associatedData: ad)
/// ```
///
/// Poly1305 is not key-committing: a malicious member can build one ciphertext that decrypts
/// validly under two different keys and so show different content to different devices
/// (Len, Grubbs, Ristenpart, "Partitioning Oracle Attacks", USENIX Security 2021). Cloak adds
///
///     commitment = BLAKE2b-256(key: K, message: "cloak.v1.commit" ‖ LE64(|nonce|) ‖ nonce
///                              ‖ LE64(|ad|) ‖ ad ‖ LE64(|ct|) ‖ ct)
///
/// where `ct` includes the Poly1305 tag. Keyed BLAKE2b hashes the key block first, so finding
/// two keys with one commitment is a BLAKE2b collision. `open` compares the commitment in
/// constant time and refuses to decrypt on mismatch (ADV-20; PROTOCOL.md §"Key commitment").
public enum CommittedAEAD {
    /// Commitment tag length in bytes.
    public static let commitmentByteCount = 32
    static let domain: [UInt8] = Array("cloak.v1.commit".utf8)

    /// A sealed box with its key-commitment tag.
    public struct SealedBox: Sendable, Equatable {
        /// The 24-byte XChaCha20 nonce.
        public let nonce: [UInt8]
        /// Ciphertext with the Poly1305 tag appended.
        public let ciphertext: [UInt8]
        /// The 32-byte commitment tag.
        public let commitment: [UInt8]

        /// Wraps received bytes; every length is checked when opening.
        public init(nonce: [UInt8], ciphertext: [UInt8], commitment: [UInt8]) {
            self.nonce = nonce
            self.ciphertext = ciphertext
            self.commitment = commitment
        }
    }

    /// Encrypts with a fresh random nonce from the operating system and computes the commitment.
    public static func seal(_ plaintext: [UInt8], key: SymmetricKey, associatedData: [UInt8]) -> SealedBox {
        seal(plaintext, key: key, associatedData: associatedData, using: SystemRandom())
    }

    /// ``seal(_:key:associatedData:)`` with the nonce drawn from `random` (SPI: vectors and the
    /// simulator only; ADV-14).
    @_spi(Randomness)
    public static func seal(
        _ plaintext: [UInt8], key: SymmetricKey, associatedData: [UInt8], using random: any RandomSource
    ) -> SealedBox {
        let box = XChaCha20Poly1305.seal(plaintext, key: key, associatedData: associatedData, using: random)
        let tag = commitment(key: key, nonce: box.nonce, associatedData: associatedData, ciphertext: box.ciphertext)
        return SealedBox(nonce: box.nonce, ciphertext: box.ciphertext, commitment: tag)
    }

    /// Verifies the commitment (constant time), then decrypts. Throws
    /// ``CryptoError/commitmentMismatch`` before any decryption if the tag is wrong.
    public static func open(_ box: SealedBox, key: SymmetricKey, associatedData: [UInt8]) throws(CryptoError)
        -> [UInt8]
    {
        try verifyCommitment(box, key: key, associatedData: associatedData)
        return try XChaCha20Poly1305.open(
            .init(nonce: box.nonce, ciphertext: box.ciphertext), key: key, associatedData: associatedData)
    }

    /// Checks only the commitment tag, in constant time.
    public static func verifyCommitment(_ box: SealedBox, key: SymmetricKey, associatedData: [UInt8])
        throws(CryptoError)
    {
        guard box.nonce.count == XChaCha20Poly1305.nonceByteCount else {
            throw .invalidNonceLength(expected: XChaCha20Poly1305.nonceByteCount, actual: box.nonce.count)
        }
        let expected = commitment(
            key: key, nonce: box.nonce, associatedData: associatedData, ciphertext: box.ciphertext)
        guard ConstantTime.equals(expected, box.commitment) else { throw .commitmentMismatch }
    }

    /// The commitment tag for the given inputs (exposed for protocol test vectors).
    public static func commitment(key: SymmetricKey, nonce: [UInt8], associatedData: [UInt8], ciphertext: [UInt8])
        -> [UInt8]
    {
        var hasher = BLAKE2b.Hasher(outputByteCount: commitmentByteCount, key: key.secret)
        hasher.update(domain)
        hasher.updateLengthPrefixed(nonce)
        hasher.updateLengthPrefixed(associatedData)
        hasher.updateLengthPrefixed(ciphertext)
        return hasher.finalize()
    }
}
