@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakTesting
import Testing

/// Published known-answer vectors (RFC 8032, draft-irtf-cfrg-xchacha, RFC 7748, RFC 7693),
/// checked through the wrappers.
@Suite("Known-answer vectors")
struct KnownAnswerTests {
    struct Ed25519Case: Sendable, CustomTestStringConvertible {
        let name: String
        let seed: String
        let publicKey: String
        let message: String
        let signature: String
        var testDescription: String { name }
    }

    static let rfc8032: [Ed25519Case] = [
        .init(
            name: "RFC 8032 7.1 TEST 1",
            seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", message: "",
            signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
        .init(
            name: "RFC 8032 7.1 TEST 2",
            seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", message: "72",
            signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ),
        .init(
            name: "RFC 8032 7.1 TEST 3",
            seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", message: "af82",
            signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
        ),
    ]

    @Test("Ed25519 RFC 8032 sign and verify", arguments: rfc8032)
    func ed25519(_ vector: Ed25519Case) throws {
        let key = try Ed25519PrivateKey(seed: SecretBytes(copying: Hex.decode(vector.seed)))
        let message = try Hex.decode(vector.message)
        #expect(Hex.encode(key.publicKey.bytes) == vector.publicKey)
        let signature = key.signature(for: message)
        #expect(Hex.encode(signature) == vector.signature)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        #expect(!key.publicKey.isValidSignature(signature, for: message + [0]))
    }

    @Test("XChaCha20-Poly1305 draft-irtf-cfrg-xchacha A.3.1")
    func xchachaDraft() throws {
        let key = try SymmetricKey(bytes: Array(0x80...0x9f))
        let nonce: [UInt8] = Array(0x40...0x57)
        let aad = try Hex.decode("50515253c0c1c2c3c4c5c6c7")
        let plaintext = Array(
            "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
                .utf8)
        let box = XChaCha20Poly1305.seal(plaintext, key: key, associatedData: aad, using: FixedBytesRandom(nonce))
        #expect(Hex.encode(box.ciphertext.prefix(16)) == "bd6d179d3e83d43b9576579493c0e939")
        #expect(Hex.encode(box.ciphertext.suffix(16)) == "c0875924c1c7987947deafd8780acf49")
        #expect(try XChaCha20Poly1305.open(box, key: key, associatedData: aad) == plaintext)
    }

    @Test("X25519 RFC 7748 5.2")
    func x25519() throws {
        let scalar = try X25519PrivateKey(
            secret: SecretBytes(copying: Hex.decode("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")))
        let u = try X25519PublicKey(bytes: Hex.decode("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))
        let shared = try scalar.sharedSecret(with: u)
        #expect(Hex.encode(shared.copyBytes()) == "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    }

    @Test("X25519 rejects the all-zero (low-order) peer key")
    func x25519LowOrder() {
        let key = X25519PrivateKey(using: DeterministicRandom(seed: 1))
        #expect(throws: CryptoError.lowOrderPublicKey) {
            try key.sharedSecret(with: X25519PublicKey(bytes: [UInt8](repeating: 0, count: 32)))
        }
    }

    @Test("BLAKE2b RFC 7693 Appendix A and keyed/short outputs")
    func blake2b() throws {
        let abc = Array("abc".utf8)
        #expect(
            Hex.encode(BLAKE2b.hash(abc, outputByteCount: 64))
                == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
        )
        #expect(Hex.encode(BLAKE2b.hash(abc)) == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")
        #expect(Hex.encode(BLAKE2b.hash([], outputByteCount: 16)) == "cae66941d9efbd404e4d88758ea67670")
        let keyed = BLAKE2b.hash(Array("hello".utf8), key: SecretBytes(copying: Array(0..<32)))
        #expect(Hex.encode(keyed) == "bc2cf927f9ed52cc29116e6a5cfdbdf96a7250f85db66887b13652596bf40d61")
    }

    @Test("BLAKE2b incremental equals one-shot for every split point")
    func blake2bIncremental() {
        var rng = SeededRandom(seed: 7)
        let message = rng.bytes(300)
        let expected = BLAKE2b.hash(message, outputByteCount: 64)
        for split in stride(from: 0, through: message.count, by: 17) {
            var hasher = BLAKE2b.Hasher(outputByteCount: 64)
            hasher.update(Array(message[..<split]))
            hasher.update(Array(message[split...]))
            #expect(hasher.finalize() == expected)
        }
    }

    @Test("Argon2id known answers (computed with the reference implementation via argon2-cffi)")
    func argon2id() throws {
        let first = try PasswordKDFParameters(opsLimit: 2, memoryKiB: 65536, salt: Array(0..<16))
        let key = try PasswordKDF.deriveKey(passphrase: "correct horse battery staple", parameters: first)
        #expect(Hex.encode(key.secret.copyBytes()) == "c05ce4c4dd7e0e45ee6011cc59d068ade47df1b01fc0cf9cd4678bdf68a5b7b0")
        let second = try PasswordKDFParameters(opsLimit: 3, memoryKiB: 65536, salt: [UInt8](repeating: 0xa5, count: 16))
        let empty = try PasswordKDF.deriveKey(passphrase: "", parameters: second)
        #expect(Hex.encode(empty.secret.copyBytes()) == "87a9f0d73b2e823849ce16c24099bd5356766f4db8cf379edbf51eca86454727")
        // Deterministic: same inputs, same key.
        #expect(try PasswordKDF.deriveKey(passphrase: "correct horse battery staple", parameters: first) == key)
        // The zeroing-storage entry point (used for OPRF outputs) derives the same key.
        let secret = SecretBytes(copying: Array("correct horse battery staple".utf8))
        #expect(try PasswordKDF.deriveKey(password: secret, parameters: first) == key)
    }
}
