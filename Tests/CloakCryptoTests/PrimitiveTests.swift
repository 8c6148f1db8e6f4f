import CSodium
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakTesting
import Testing

@Suite("Secrets, padding, derivation, streams, sealed boxes")
struct PrimitiveTests {
    @Test("secrets never print, dump or reflect their bytes")
    func secretsRedacted() throws {
        let marker: [UInt8] = Array("cloak-canary-secret".utf8)
        let secret = SecretBytes(copying: marker)
        let key = try SymmetricKey(bytes: Array(repeating: 0x41, count: 32))
        let signing = Ed25519PrivateKey(using: DeterministicRandom(seed: 1))
        let agreement = X25519PrivateKey(using: DeterministicRandom(seed: 2))
        var dumped = ""
        dump(secret, to: &dumped)
        dump(key, to: &dumped)
        dump(signing, to: &dumped)
        dump(agreement, to: &dumped)
        let texts = [
            "\(secret)", String(reflecting: secret), "\(key)", String(reflecting: key), "\(signing)",
            String(reflecting: signing), "\(agreement)", dumped,
        ]
        let seedHex = Hex.encode(signing.seed.copyBytes())
        for text in texts {
            #expect(!text.contains("cloak-canary"))
            #expect(!text.contains("AAAA"))
            #expect(!text.contains("41414141"))
            #expect(!text.contains(seedHex))
            #expect(!text.contains("65, 65"))
        }
        #expect("\(secret)" == "SecretBytes(19 bytes, redacted)")
    }

    @Test("secret equality is by content; wiping zeroes the storage")
    func secretEqualityAndWipe() {
        let a = SecretBytes(copying: [1, 2, 3, 4])
        let b = SecretBytes(copying: [1, 2, 3, 4])
        let c = SecretBytes(copying: [1, 2, 3, 5])
        #expect(a == b)
        #expect(a != c)
        #expect(a != SecretBytes(copying: [1, 2, 3]))
        a._wipe()
        #expect(a.copyBytes() == [0, 0, 0, 0])
        var temporary: [UInt8] = [9, 9, 9]
        SecretBytes.wipe(&temporary)
        #expect(temporary == [0, 0, 0])
        #expect(ConstantTime.equals([1, 2], [1, 2]))
        #expect(!ConstantTime.equals([1, 2], [1, 3]))
        #expect(!ConstantTime.equals([1, 2], [1, 2, 3]))
    }

    @Test("ADV-26 padding: every length pads to a bucket ≥ 256 and round-trips")
    func paddingBuckets() throws {
        var buckets = Set<Int>()
        for length in 0...5000 {
            let message = [UInt8](repeating: 0x80, count: length)  // worst case: looks like a marker
            let padded = try Padding.pad(message)
            #expect(padded.count == Padding.paddedLength(for: length))
            #expect(padded.count > length)
            #expect(padded.count >= 256)
            #expect(Double(padded.count) <= max(256, Double(length + 1) * 1.13))
            #expect(try Padding.unpad(padded) == message)
            buckets.insert(padded.count)
        }
        // Length hiding: 5,001 lengths collapse into few buckets.
        #expect(buckets.count < 80)
        #expect(Padding.paddedLength(for: 0) == Padding.paddedLength(for: 255))
    }

    @Test("padding rejects a missing marker and an oversize result")
    func paddingErrors() {
        #expect(throws: CryptoError.invalidPadding) { try Padding.unpad([UInt8](repeating: 0, count: 256)) }
        #expect(throws: CryptoError.invalidPadding) { try Padding.unpad([]) }
        #expect(throws: CryptoError.paddingTooLarge(requested: 256, maximum: 100)) {
            try Padding.pad([1, 2, 3], maximumLength: 100)
        }
    }

    @Test("ADV-24 derived keys are pairwise distinct across purpose, subject and epoch, and deterministic")
    func keyDerivation() throws {
        let root = SymmetricKey.random(using: DeterministicRandom(seed: 11))
        let purposes: [KeyDerivation.Purpose] = [.conversation, .changeSetAEAD, .snapshotAEAD, .library, .localStorage]
        var seen = Set<[UInt8]>()
        var count = 0
        for purpose in purposes {
            for subject in [[], [UInt8](repeating: 1, count: 16), [UInt8](repeating: 2, count: 16)] {
                for epoch: UInt64 in [0, 1, 2, 1 << 40] {
                    let key = KeyDerivation.derive(from: root, purpose: purpose, subject: subject, epoch: epoch)
                    #expect(key == KeyDerivation.derive(from: root, purpose: purpose, subject: subject, epoch: epoch))
                    seen.insert(key.secret.copyBytes())
                    count += 1
                }
            }
        }
        #expect(seen.count == count)
        // A ciphertext under one conversation's key does not open under another's.
        let a = KeyDerivation.derive(from: root, purpose: .conversation, subject: [UInt8](repeating: 1, count: 16))
        let b = KeyDerivation.derive(from: root, purpose: .conversation, subject: [UInt8](repeating: 2, count: 16))
        let box = CommittedAEAD.seal([1, 2, 3], key: a, associatedData: [])
        #expect(throws: CryptoError.commitmentMismatch) { try CommittedAEAD.open(box, key: b, associatedData: []) }
    }

    @Test("ADV-43 secretstream: round trip; truncation, reorder, duplication and tampering detected")
    func secretStream() throws {
        let key = SymmetricKey.random(using: DeterministicRandom(seed: 12))
        var rng = SeededRandom(seed: 12)
        let payload = rng.bytes(10_000)
        let sealed = SecretStream.encrypt(payload, key: key, chunkSize: 1000)
        #expect(try SecretStream.decrypt(sealed, key: key, chunkSize: 1000) == payload)
        // Truncation at a chunk boundary: every chunk authenticates, but the final tag is missing.
        let withoutLast = Array(sealed.prefix(24 + 9 * 1017))
        #expect(throws: CryptoError.streamTruncated) { try SecretStream.decrypt(withoutLast, key: key, chunkSize: 1000) }
        // Chunk-level: reorder, duplicate, tamper, pull after final.
        var writer = SecretStreamWriter(key: key)
        let c1 = try writer.push([1, 2, 3])
        let c2 = try writer.push([4, 5, 6])
        let c3 = try writer.push([7], isFinal: true)
        #expect(throws: CryptoError.streamAlreadyFinished) { try writer.push([8]) }
        var reorder = try SecretStreamReader(key: key, header: writer.header)
        #expect(throws: CryptoError.streamChunkRejected) { try reorder.pull(c2) }
        var duplicate = try SecretStreamReader(key: key, header: writer.header)
        _ = try duplicate.pull(c1)
        #expect(throws: CryptoError.streamChunkRejected) { try duplicate.pull(c1) }
        var tamper = try SecretStreamReader(key: key, header: writer.header)
        #expect(throws: CryptoError.streamChunkRejected) { try tamper.pull(flip(c1, 30)) }
        var good = try SecretStreamReader(key: key, header: writer.header)
        #expect(try good.pull(c1).plaintext == [1, 2, 3])
        #expect(throws: CryptoError.streamTruncated) { try good.finish() }
        #expect(try good.pull(c2).isFinal == false)
        let last = try good.pull(c3)
        #expect(last.plaintext == [7] && last.isFinal)
        try good.finish()
        #expect(throws: CryptoError.streamAlreadyFinished) { try good.pull(c3) }
        #expect(throws: CryptoError.invalidStreamHeader) { _ = try SecretStreamReader(key: key, header: [1, 2]) }
    }

    @Test("sealed boxes interoperate with libsodium's crypto_box_seal in both directions")
    func sealedBoxInterop() throws {
        let recipient = X25519PrivateKey(using: DeterministicRandom(seed: 21))
        let message: [UInt8] = Array("epoch key bytes".utf8)
        let ours = try SealedBox.seal(message, to: recipient.publicKey)
        #expect(ours.count == message.count + SealedBox.overheadByteCount)
        var opened = [UInt8](repeating: 0, count: message.count)
        let secret = recipient.secret.copyBytes()
        #expect(crypto_box_seal_open(&opened, ours, UInt64(ours.count), recipient.publicKey.bytes, secret) == 0)
        #expect(opened == message)
        var theirs = [UInt8](repeating: 0, count: message.count + 48)
        #expect(crypto_box_seal(&theirs, message, UInt64(message.count), recipient.publicKey.bytes) == 0)
        #expect(try SealedBox.open(theirs, with: recipient) == message)
        #expect(try SealedBox.openSecret(theirs, with: recipient).copyBytes() == message)
        // Another device cannot open it; tampering is detected; low-order recipients are refused.
        let other = X25519PrivateKey(using: DeterministicRandom(seed: 22))
        #expect(throws: CryptoError.sealedBoxOpenFailed) { try SealedBox.open(ours, with: other) }
        #expect(throws: CryptoError.sealedBoxOpenFailed) { try SealedBox.open(flip(ours, 300), with: recipient) }
        #expect(throws: CryptoError.ciphertextTooShort(minimum: 48, actual: 47)) {
            try SealedBox.open(Array(ours.prefix(47)), with: recipient)
        }
        #expect(throws: CryptoError.lowOrderPublicKey) {
            try SealedBox.seal(message, to: X25519PublicKey(bytes: [UInt8](repeating: 0, count: 32)))
        }
    }

    @Test("ADV-25/ADV-37 Argon2id parameters: floors and ceilings enforced when decoding, salts unique")
    func passwordParameters() throws {
        let params = PasswordKDFParameters.recommended()
        #expect(params.opsLimit >= PasswordKDFParameters.floorOpsLimit)
        #expect(params.memoryKiB >= PasswordKDFParameters.floorMemoryKiB)
        #expect(try PasswordKDFParameters(decoding: params.encoded) == params)
        #expect(PasswordKDFParameters.recommended().salt != params.salt)
        let salt = [UInt8](repeating: 7, count: 16)
        let weak: [[UInt8]] = [
            [1] + UInt32(1).littleEndianBytes + UInt32(65536).littleEndianBytes + salt,
            [1] + UInt32(3).littleEndianBytes + UInt32(8).littleEndianBytes + salt,
        ]
        for encoded in weak {
            #expect(throws: CryptoError.passwordParametersBelowFloor) { try PasswordKDFParameters(decoding: encoded) }
        }
        let huge = [1] + UInt32(3).littleEndianBytes + UInt32.max.littleEndianBytes + salt
        #expect(throws: CryptoError.passwordParametersAboveCeiling) { try PasswordKDFParameters(decoding: huge) }
        let legacy = [0] + UInt32(3).littleEndianBytes + UInt32(65536).littleEndianBytes + salt
        #expect(throws: CryptoError.unsupportedPasswordAlgorithm(0)) { try PasswordKDFParameters(decoding: legacy) }
        #expect(throws: CryptoError.self) { try PasswordKDFParameters(decoding: [1, 2, 3]) }
    }

    @Test("deterministic random streams repeat for a seed and differ across seeds")
    func deterministicRandom() {
        #expect(DeterministicRandom(seed: 1).bytes(100) == DeterministicRandom(seed: 1).bytes(100))
        #expect(DeterministicRandom(seed: 1).bytes(100) != DeterministicRandom(seed: 2).bytes(100))
        let stream = DeterministicRandom(seed: 3)
        let joined = stream.bytes(300) + stream.bytes(300)
        #expect(joined == DeterministicRandom(seed: 3).bytes(600))
        #expect(SystemRandom().bytes(32) != SystemRandom().bytes(32))
    }

    @Test("hex round trip and errors")
    func hex() throws {
        #expect(Hex.encode([0, 0xab, 0xff]) == "00abff")
        #expect(try Hex.decode("00ABff") == [0, 0xab, 0xff])
        #expect(throws: CryptoError.self) { try Hex.decode("abc") }
        #expect(throws: CryptoError.self) { try Hex.decode("zz") }
    }

    @Test("ADV-14 the encrypt API has no caller-supplied nonce parameter")
    func noCallerNonce() {
        // `seal` takes a RandomSource, never a nonce: this compiles only against that signature.
        let seal: ([UInt8], SymmetricKey, [UInt8], any RandomSource) -> XChaCha20Poly1305.SealedBox =
            XChaCha20Poly1305.seal(_:key:associatedData:using:)
        let box = seal([1], SymmetricKey.random(), [], SystemRandom())
        #expect(box.nonce.count == 24)
    }
}
