@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakTesting
import Testing

/// ADV-01: the Wycheproof files run through Cloak's Swift wrappers (not raw libsodium).
/// Each test counts the cases it ran and fails if a file is missing or ran zero cases.
@Suite("ADV-01 Wycheproof through the CloakCrypto wrappers")
struct WycheproofTests {
    @Test("ADV-01 XChaCha20-Poly1305: valid open+seal exactly, invalid rejected, wrong nonce lengths rejected by length")
    func xchacha() throws {
        let file = try WycheproofFile.load("xchacha20_poly1305_test.json")
        var counts = (valid: 0, invalid: 0, wrongNonceLength: 0)
        for group in file.testGroups {
            for test in group.tests {
                let key = try SymmetricKey(bytes: Hex.decode(test.key!))
                let nonce = try Hex.decode(test.iv!)
                let aad = try Hex.decode(test.aad!)
                let msg = try Hex.decode(test.msg!)
                let sealed = try Hex.decode(test.ct!) + Hex.decode(test.tag!)
                let box = XChaCha20Poly1305.SealedBox(nonce: nonce, ciphertext: sealed)
                if nonce.count != XChaCha20Poly1305.nonceByteCount {
                    #expect(test.result == "invalid", "tc \(test.tcId)")
                    #expect(throws: CryptoError.invalidNonceLength(expected: 24, actual: nonce.count)) {
                        try XChaCha20Poly1305.open(box, key: key, associatedData: aad)
                    }
                    counts.wrongNonceLength += 1
                    continue
                }
                switch test.result {
                case "valid":
                    #expect(try XChaCha20Poly1305.open(box, key: key, associatedData: aad) == msg, "tc \(test.tcId)")
                    let resealed = XChaCha20Poly1305.seal(
                        msg, key: key, associatedData: aad, using: FixedBytesRandom(nonce))
                    #expect(resealed == box, "tc \(test.tcId)")
                    counts.valid += 1
                default:
                    #expect(throws: CryptoError.self, "tc \(test.tcId)") {
                        try XChaCha20Poly1305.open(box, key: key, associatedData: aad)
                    }
                    counts.invalid += 1
                }
            }
        }
        TestData.report("wycheproof xchacha20_poly1305: \(counts.valid) valid, \(counts.invalid) invalid, \(counts.wrongNonceLength) wrong-nonce-length")
        #expect(counts.valid == 246)
        #expect(counts.invalid + counts.wrongNonceLength == 69)
        #expect(counts.wrongNonceLength >= 9)
        #expect(counts.valid + counts.invalid + counts.wrongNonceLength == file.numberOfTests)
    }

    @Test("ADV-01 ChaCha20-Poly1305-IETF: valid opens to msg, invalid rejected")
    func chacha() throws {
        let file = try WycheproofFile.load("chacha20_poly1305_test.json")
        var valid = 0
        var invalid = 0
        for group in file.testGroups {
            for test in group.tests {
                let key = try SymmetricKey(bytes: Hex.decode(test.key!))
                let nonce = try Hex.decode(test.iv!)
                let aad = try Hex.decode(test.aad!)
                let msg = try Hex.decode(test.msg!)
                let sealed = try Hex.decode(test.ct!) + Hex.decode(test.tag!)
                if test.result == "valid" {
                    let opened = try ChaCha20Poly1305IETF.open(ciphertext: sealed, nonce: nonce, key: key, associatedData: aad)
                    #expect(opened == msg, "tc \(test.tcId)")
                    let resealed = ChaCha20Poly1305IETF.seal(msg, key: key, associatedData: aad, using: FixedBytesRandom(nonce))
                    #expect(resealed.ciphertext == sealed, "tc \(test.tcId)")
                    valid += 1
                } else {
                    #expect(throws: CryptoError.self, "tc \(test.tcId)") {
                        try ChaCha20Poly1305IETF.open(ciphertext: sealed, nonce: nonce, key: key, associatedData: aad)
                    }
                    invalid += 1
                }
            }
        }
        TestData.report("wycheproof chacha20_poly1305: \(valid) valid, \(invalid) invalid")
        #expect(valid == 256)
        #expect(invalid == 69)
    }

    @Test("ADV-01/ADV-22 Ed25519 strict verify: valid accepted, invalid (incl. malleable S) rejected")
    func ed25519() throws {
        let file = try WycheproofFile.load("ed25519_test.json")
        var valid = 0
        var invalid = 0
        for group in file.testGroups {
            let publicKey = try Ed25519PublicKey(bytes: Hex.decode(group.publicKey!.pk))
            for test in group.tests {
                let accepted = try publicKey.isValidSignature(Hex.decode(test.sig!), for: Hex.decode(test.msg!))
                if test.result == "valid" {
                    #expect(accepted, "tc \(test.tcId): \(test.comment)")
                    valid += 1
                } else {
                    #expect(!accepted, "tc \(test.tcId): \(test.comment)")
                    invalid += 1
                }
            }
        }
        TestData.report("wycheproof ed25519: \(valid) valid, \(invalid) invalid")
        #expect(valid == 88)
        #expect(invalid == 63)
    }

    @Test("ADV-01 X25519: valid give the shared secret; low-order 'acceptable' cases are rejected")
    func x25519() throws {
        let file = try WycheproofFile.load("x25519_test.json")
        var valid = 0
        var acceptableComputed = 0
        var acceptableRejected = 0
        for group in file.testGroups {
            for test in group.tests {
                let privateKey = try X25519PrivateKey(secret: SecretBytes(copying: Hex.decode(test.private!)))
                let peer = try X25519PublicKey(bytes: Hex.decode(test.public!))
                let expected = try Hex.decode(test.shared!)
                let result = Result { () throws(CryptoError) in try privateKey.sharedSecret(with: peer) }
                switch (test.result, result) {
                case ("valid", .success(let shared)):
                    #expect(shared.copyBytes() == expected, "tc \(test.tcId)")
                    valid += 1
                case ("acceptable", .success(let shared)):
                    #expect(shared.copyBytes() == expected, "tc \(test.tcId)")
                    acceptableComputed += 1
                case ("acceptable", .failure(let error)):
                    #expect(error == .lowOrderPublicKey)
                    #expect(expected.allSatisfy { $0 == 0 }, "only all-zero results may be rejected (tc \(test.tcId))")
                    acceptableRejected += 1
                default:
                    Issue.record("tc \(test.tcId) \(test.result): unexpected \(result)")
                }
            }
        }
        TestData.report("wycheproof x25519: \(valid) valid, \(acceptableComputed) acceptable computed, \(acceptableRejected) acceptable rejected (low order)")
        #expect(valid == 264)
        #expect(acceptableComputed == 223)
        #expect(acceptableRejected == 31)
    }
}
