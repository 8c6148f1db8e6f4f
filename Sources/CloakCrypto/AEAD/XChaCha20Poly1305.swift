import CSodium

/// XChaCha20-Poly1305-IETF authenticated encryption with associated data.
///
/// ```swift
/// let key = SymmetricKey.random()
/// let box = XChaCha20Poly1305.seal(plaintext, key: key, associatedData: header)
/// let opened = try XChaCha20Poly1305.open(box, key: key, associatedData: header)
/// ```
///
/// Nonces are 24 random bytes drawn from the ``RandomSource`` on every seal; there is no way
/// to pass a nonce to `seal` (ADV-14: random 192-bit nonces make collisions negligible even
/// after a device restores an old backup). This primitive does not commit to its key: use
/// ``CommittedAEAD`` for anything a malicious member could craft (ADV-20).
public enum XChaCha20Poly1305 {
    /// Nonce length in bytes.
    public static let nonceByteCount = 24
    /// Authentication tag length in bytes.
    public static let tagByteCount = 16

    /// A nonce and the ciphertext with its 16-byte tag appended.
    public struct SealedBox: Sendable, Equatable {
        /// The 24-byte nonce.
        public let nonce: [UInt8]
        /// Ciphertext followed by the Poly1305 tag.
        public let ciphertext: [UInt8]

        /// Wraps received bytes; lengths are checked when opening.
        public init(nonce: [UInt8], ciphertext: [UInt8]) {
            self.nonce = nonce
            self.ciphertext = ciphertext
        }
    }

    /// Encrypts `plaintext` under `key` with a fresh random nonce from the operating system;
    /// `associatedData` is authenticated but not encrypted.
    public static func seal(_ plaintext: [UInt8], key: SymmetricKey, associatedData: [UInt8]) -> SealedBox {
        seal(plaintext, key: key, associatedData: associatedData, using: SystemRandom())
    }

    /// ``seal(_:key:associatedData:)`` with the nonce drawn from `random`: for the vectors and the
    /// simulator only (SPI), so an app can never choose a nonce (ADV-14).
    @_spi(Randomness)
    public static func seal(
        _ plaintext: [UInt8], key: SymmetricKey, associatedData: [UInt8], using random: any RandomSource
    ) -> SealedBox {
        let nonce = random.bytes(nonceByteCount)
        let ciphertext = encrypt(plaintext, key: key, nonce: nonce, associatedData: associatedData)
        return SealedBox(nonce: nonce, ciphertext: ciphertext)
    }

    /// Decrypts and verifies. Throws ``CryptoError/invalidNonceLength(expected:actual:)`` for a
    /// nonce that is not 24 bytes, and ``CryptoError/authenticationFailed`` for any change to
    /// key, nonce, associated data, ciphertext or tag.
    public static func open(_ box: SealedBox, key: SymmetricKey, associatedData: [UInt8]) throws(CryptoError)
        -> [UInt8]
    {
        try Sodium.ensure()
        guard box.nonce.count == nonceByteCount else {
            throw .invalidNonceLength(expected: nonceByteCount, actual: box.nonce.count)
        }
        guard box.ciphertext.count >= tagByteCount else {
            throw .ciphertextTooShort(minimum: tagByteCount, actual: box.ciphertext.count)
        }
        let plainCount = box.ciphertext.count - tagByteCount
        var status: Int32 = 0
        let plaintext = [UInt8].filled(count: plainCount) { out in
            status = key.withKeyPointer { k in
                withBytes(box.ciphertext) { c in
                    withBytes(associatedData) { ad in
                        box.nonce.withUnsafeBufferPointer { n in
                            crypto_aead_xchacha20poly1305_ietf_decrypt(
                                out, nil, nil, c, UInt64(box.ciphertext.count), ad,
                                UInt64(associatedData.count), n.baseAddress!, k)
                        }
                    }
                }
            }
        }
        guard status == 0 else { throw .authenticationFailed }
        return plaintext
    }

    static func encrypt(_ plaintext: [UInt8], key: SymmetricKey, nonce: [UInt8], associatedData: [UInt8])
        -> [UInt8]
    {
        _ = Sodium.ready
        return [UInt8].filled(count: plaintext.count + tagByteCount) { out in
            key.withKeyPointer { k in
                withBytes(plaintext) { m in
                    withBytes(associatedData) { ad in
                        nonce.withUnsafeBufferPointer { n in
                            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                                out, nil, m, UInt64(plaintext.count), ad, UInt64(associatedData.count),
                                nil, n.baseAddress!, k)
                        }
                    }
                }
            }
        }
    }
}

/// ChaCha20-Poly1305-IETF (RFC 8439, 12-byte nonce), exposed for interoperability checks
/// (Wycheproof) only. Cloak's protocol never uses it: random 96-bit nonces are too short to
/// use safely for many messages under one key.
public enum ChaCha20Poly1305IETF {
    /// Nonce length in bytes.
    public static let nonceByteCount = 12

    /// Decrypts and verifies `ciphertext` (with its 16-byte tag appended).
    public static func open(
        ciphertext: [UInt8], nonce: [UInt8], key: SymmetricKey, associatedData: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        try Sodium.ensure()
        guard nonce.count == nonceByteCount else {
            throw .invalidNonceLength(expected: nonceByteCount, actual: nonce.count)
        }
        guard ciphertext.count >= 16 else { throw .ciphertextTooShort(minimum: 16, actual: ciphertext.count) }
        var status: Int32 = 0
        let plaintext = [UInt8].filled(count: ciphertext.count - 16) { out in
            status = key.withKeyPointer { k in
                withBytes(ciphertext) { c in
                    withBytes(associatedData) { ad in
                        crypto_aead_chacha20poly1305_ietf_decrypt(
                            out, nil, nil, c, UInt64(ciphertext.count), ad, UInt64(associatedData.count), nonce, k)
                    }
                }
            }
        }
        guard status == 0 else { throw .authenticationFailed }
        return plaintext
    }

    /// Encrypts with a nonce drawn from `random` (SPI: an app can never choose a nonce, ADV-14).
    @_spi(Randomness)
    public static func seal(
        _ plaintext: [UInt8], key: SymmetricKey, associatedData: [UInt8], using random: any RandomSource
    ) -> (nonce: [UInt8], ciphertext: [UInt8]) {
        _ = Sodium.ready
        let nonce = random.bytes(nonceByteCount)
        let ciphertext = [UInt8].filled(count: plaintext.count + 16) { out in
            key.withKeyPointer { k in
                withBytes(plaintext) { m in
                    withBytes(associatedData) { ad in
                        _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                            out, nil, m, UInt64(plaintext.count), ad, UInt64(associatedData.count), nil, nonce, k)
                    }
                }
            }
        }
        return (nonce, ciphertext)
    }
}
