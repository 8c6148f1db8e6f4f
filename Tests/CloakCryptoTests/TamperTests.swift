@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakTesting
import Testing

/// Every bit of every input to `open` matters: flipping any one makes it fail with a typed
/// error (key, nonce, associated data, ciphertext, tag, commitment).
@Suite("AEAD tamper detection")
struct TamperTests {
    static func fixture() throws -> (key: SymmetricKey, ad: [UInt8], plaintext: [UInt8]) {
        var rng = SeededRandom(seed: 99)
        let key = SecretBytes(copying: rng.bytes(32))
        return (try SymmetricKey(key), rng.bytes(21), rng.bytes(40))
    }

    @Test("flipping any bit of key, nonce, AD, ciphertext or tag fails authentication")
    func everyBitClass() throws {
        let (key, ad, plaintext) = try Self.fixture()
        let box = XChaCha20Poly1305.seal(plaintext, key: key, associatedData: ad, using: DeterministicRandom(seed: 3))
        #expect(try XChaCha20Poly1305.open(box, key: key, associatedData: ad) == plaintext)
        let keyBytes = key.secret.copyBytes()
        for bit in 0..<(keyBytes.count * 8) {
            let wrongKey = try SymmetricKey(bytes: flip(keyBytes, bit))
            #expect(throws: CryptoError.authenticationFailed) { try XChaCha20Poly1305.open(box, key: wrongKey, associatedData: ad) }
        }
        for bit in 0..<(box.nonce.count * 8) {
            let tampered = XChaCha20Poly1305.SealedBox(nonce: flip(box.nonce, bit), ciphertext: box.ciphertext)
            #expect(throws: CryptoError.authenticationFailed) { try XChaCha20Poly1305.open(tampered, key: key, associatedData: ad) }
        }
        for bit in 0..<(ad.count * 8) {
            #expect(throws: CryptoError.authenticationFailed) {
                try XChaCha20Poly1305.open(box, key: key, associatedData: flip(ad, bit))
            }
        }
        // Ciphertext body and the trailing 16-byte tag.
        for bit in 0..<(box.ciphertext.count * 8) {
            let tampered = XChaCha20Poly1305.SealedBox(nonce: box.nonce, ciphertext: flip(box.ciphertext, bit))
            #expect(throws: CryptoError.authenticationFailed) { try XChaCha20Poly1305.open(tampered, key: key, associatedData: ad) }
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try XChaCha20Poly1305.open(.init(nonce: box.nonce, ciphertext: box.ciphertext + [0]), key: key, associatedData: ad)
        }
        #expect(throws: CryptoError.ciphertextTooShort(minimum: 16, actual: 15)) {
            try XChaCha20Poly1305.open(.init(nonce: box.nonce, ciphertext: Array(box.ciphertext.prefix(15))), key: key, associatedData: ad)
        }
    }

    @Test("ADV-14 two seals of one plaintext use fresh nonces and differ")
    func freshNonces() throws {
        let (key, ad, plaintext) = try Self.fixture()
        let a = XChaCha20Poly1305.seal(plaintext, key: key, associatedData: ad)
        let b = XChaCha20Poly1305.seal(plaintext, key: key, associatedData: ad)
        #expect(a.nonce != b.nonce)
        #expect(a.ciphertext != b.ciphertext)
    }

    @Test("ADV-20 commitment: wrong key fails the commitment check before decryption")
    func commitmentWrongKey() throws {
        let (key, ad, plaintext) = try Self.fixture()
        let sealed = CommittedAEAD.seal(plaintext, key: key, associatedData: ad)
        #expect(try CommittedAEAD.open(sealed, key: key, associatedData: ad) == plaintext)
        #expect(throws: CryptoError.commitmentMismatch) {
            try CommittedAEAD.open(sealed, key: SymmetricKey.random(), associatedData: ad)
        }
    }

    @Test("ADV-20 commitment covers nonce, associated data, ciphertext, tag and itself")
    func commitmentCoverage() throws {
        let (key, ad, plaintext) = try Self.fixture()
        let s = CommittedAEAD.seal(plaintext, key: key, associatedData: ad, using: DeterministicRandom(seed: 5))
        let variants: [(CommittedAEAD.SealedBox, [UInt8])] = [
            (.init(nonce: flip(s.nonce, 3), ciphertext: s.ciphertext, commitment: s.commitment), ad),
            (.init(nonce: s.nonce, ciphertext: flip(s.ciphertext, 9), commitment: s.commitment), ad),
            (.init(nonce: s.nonce, ciphertext: flip(s.ciphertext, s.ciphertext.count * 8 - 1), commitment: s.commitment), ad),
            (.init(nonce: s.nonce, ciphertext: s.ciphertext, commitment: flip(s.commitment, 0)), ad),
            (.init(nonce: s.nonce, ciphertext: s.ciphertext, commitment: Array(s.commitment.prefix(31))), ad),
            (s, flip(ad, 4)),
        ]
        for (box, associatedData) in variants {
            #expect(throws: CryptoError.commitmentMismatch) {
                try CommittedAEAD.open(box, key: key, associatedData: associatedData)
            }
        }
    }

    @Test("ADV-15 identical plaintexts under one key give distinct committed ciphertexts")
    func nonDeterministic() throws {
        let (key, ad, plaintext) = try Self.fixture()
        let a = CommittedAEAD.seal(plaintext, key: key, associatedData: ad)
        let b = CommittedAEAD.seal(plaintext, key: key, associatedData: ad)
        #expect(a.ciphertext != b.ciphertext)
        #expect(a.commitment != b.commitment)
    }
}

func flip(_ bytes: [UInt8], _ bit: Int) -> [UInt8] {
    var copy = bytes
    copy[bit / 8] ^= UInt8(1 << (bit % 8))
    return copy
}
