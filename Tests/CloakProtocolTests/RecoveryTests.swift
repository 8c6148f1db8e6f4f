@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

/// Recovery secrets (PROTOCOL.md §"Recovery"): BIP-0039 words, their checksum, the derived
/// recovery keys, and the Argon2id floors a server cannot lower (ADV-25).
@Suite("Recovery")
struct RecoveryTests {
    struct RecoveryVector: Decodable {
        let name: String
        let entropyHex, words, passphrase, saltHex: String?
        let opsLimit, memoryKib: UInt32?
        let accountIdHex, oprfSeedHex, oprfKeyInfoHex, oprfInputHex, blindRandomHex: String?
        let blindedElementHex, evaluatedElementHex, oprfOutputHex: String?
        let kdfParametersHex, rootKeyHex, signingSeedHex, signingPublicKeyHex: String
        let agreementSecretKeyHex, agreementPublicKeyHex, recoveryKeyIdHex: String
    }

    @Test("recovery.json: words, and a passphrase through the OPRF (§22), give the listed root, keys and key id")
    func vectors() throws {
        let vectors = try VectorTests.load("recovery.json", as: RecoveryVector.self)
        #expect(vectors.count == 2)
        for v in vectors {
            let keys: RecoveryKeys
            if let words = v.words, let entropy = v.entropyHex {
                #expect(v.kdfParametersHex == "02")
                let root = BLAKE2b.hash(
                    Array("cloak.v1.recovery".utf8) + [0] + Array("words".utf8),
                    key: SecretBytes(copying: try Hex.decode(entropy)))
                #expect(Hex.encode(root) == v.rootKeyHex)
                keys = try RecoverySecret(words: words).keys
            } else {
                let enrollment = try RecoveryEnrollment(decoding: Hex.decode(v.kdfParametersHex))
                #expect(enrollment.keyVersion == 1 && v.kdfParametersHex.hasPrefix("0301000000"))
                #expect(enrollment.argon2.opsLimit == v.opsLimit && enrollment.argon2.memoryKiB == v.memoryKib)
                #expect(Hex.encode(enrollment.argon2.salt) == v.saltHex)
                let account = try AccountID(validating: Hex.decode(v.accountIdHex ?? ""), field: "account")
                let info = Array("cloak.v1.recovery.oprf-key".utf8) + [0, 1, 0, 0, 0] + account.bytes
                #expect(Hex.encode(info) == v.oprfKeyInfoHex)
                let passphrase = try RecoveryPassphrase.normalized("  " + (v.passphrase ?? "") + " ")
                let input = RecoveryPassphrase.oprfInput(account: account, passphrase: passphrase)
                #expect(Hex.encode(input) == v.oprfInputHex)
                #expect(input == Array("cloak.v1.recovery.oprf-input".utf8) + [0] + account.bytes + Array((v.passphrase ?? "").utf8))
                let blind = try OPRF.blind(input, using: FixedBytesRandom(Hex.decode(v.blindRandomHex ?? "")))
                #expect(Hex.encode(blind.blindedElement.bytes) == v.blindedElementHex)
                let key = try OPRF.PrivateKey(seed: SecretBytes(copying: Hex.decode(v.oprfSeedHex ?? "")), info: info)
                let evaluated = try key.blindEvaluate(blind.blindedElement)
                #expect(Hex.encode(evaluated.bytes) == v.evaluatedElementHex)
                let output = try blind.finalize(evaluatedElement: evaluated)
                #expect(Hex.encode(output.copyBytes()) == v.oprfOutputHex)
                // The unblinded evaluation equals the server's direct evaluation (RFC 9497 Evaluate).
                #expect(try key.evaluate(input).copyBytes() == output.copyBytes())
                keys = try RecoveryPassphrase.keys(oprfOutput: output, account: account, enrollment: enrollment)
            }
            let root = try SymmetricKey(bytes: Hex.decode(v.rootKeyHex))
            let seed = KeyDerivation.derive(from: root, purpose: .recovery, subject: Array("sign".utf8))
            #expect(Hex.encode(seed.secret.copyBytes()) == v.signingSeedHex)
            #expect(Hex.encode(keys.signing.seed.copyBytes()) == v.signingSeedHex)
            #expect(Hex.encode(keys.signing.publicKey.bytes) == v.signingPublicKeyHex)
            #expect(Hex.encode(keys.agreement.secret.copyBytes()) == v.agreementSecretKeyHex)
            #expect(Hex.encode(keys.agreement.publicKey.bytes) == v.agreementPublicKeyHex)
            #expect(keys.id.hex == v.recoveryKeyIdHex)
        }
    }

    /// BIP-0039's published 128-bit vectors (trezor/python-mnemonic `vectors.json`): the words
    /// parse (so the checksum matches) and print back identically.
    @Test(
        "BIP-0039 reference mnemonics parse and print back",
        arguments: [
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
            "legal winner thank year wave sausage worth useful legal winner thank yellow",
            "letter advice cage absurd amount doctor acoustic avoid letter advice cage above",
            "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
        ])
    func bip39Reference(_ words: String) throws {
        #expect(try RecoverySecret(words: words).words == words)
    }

    @Test("random secrets round-trip through words and give the same keys")
    func roundTrip() throws {
        for seed in UInt64(1)...32 {
            let secret = RecoverySecret.random(using: DeterministicRandom(seed: seed))
            let words = secret.words
            #expect(words.split(separator: " ").count == 12)
            let again = try RecoverySecret(words: words.uppercased().replacingOccurrences(of: " ", with: "  \n"))
            #expect(again.words == words)
            #expect(again.keys.id == secret.keys.id)
        }
    }

    @Test("wrong word count, unknown words and bad checksums are refused with the failed check")
    func errors() {
        let valid = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
        #expect(throws: RecoveryError.wrongWordCount(11)) {
            try RecoverySecret(words: valid.split(separator: " ").dropLast().joined(separator: " "))
        }
        #expect(throws: RecoveryError.wrongWordCount(13)) { try RecoverySecret(words: valid + " about") }
        #expect(throws: RecoveryError.unknownWord(position: 5)) {
            try RecoverySecret(
                words: "abandon abandon abandon abandon cloak abandon abandon abandon abandon abandon abandon about")
        }
        #expect(throws: RecoveryError.badChecksum) {
            try RecoverySecret(words: String(repeating: "abandon ", count: 12))
        }
        #expect(throws: RecoveryError.badChecksum) {
            try RecoverySecret(
                words: "about abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon")
        }
    }

    @Test("ADV-25 stored Argon2id parameters below the floors, above the ceilings or of another algorithm are refused")
    func parameterFloors() throws {
        let salt = [UInt8](repeating: 5, count: 16)
        func encoded(_ algorithm: UInt8, _ ops: UInt32, _ kib: UInt32) -> [UInt8] {
            [algorithm] + ops.littleEndianBytes + kib.littleEndianBytes + salt
        }
        #expect(throws: CryptoError.passwordParametersBelowFloor) {
            try PasswordKDFParameters(decoding: encoded(1, 1, 64 * 1024))
        }
        #expect(throws: CryptoError.passwordParametersBelowFloor) {
            try PasswordKDFParameters(decoding: encoded(1, 3, 8))
        }
        #expect(throws: CryptoError.passwordParametersAboveCeiling) {
            try PasswordKDFParameters(decoding: encoded(1, 3, 4 * 1024 * 1024))
        }
        #expect(throws: CryptoError.unsupportedPasswordAlgorithm(2)) {
            try PasswordKDFParameters(decoding: encoded(2, 3, 64 * 1024))
        }
        // The words marker is not a set of Argon2id parameters.
        #expect(throws: (any Error).self) { try PasswordKDFParameters(decoding: RecoverySecret.wordsParameterMarker) }
        #expect(try PasswordKDFParameters(decoding: encoded(1, 2, 64 * 1024)).opsLimit == 2)
    }
}
