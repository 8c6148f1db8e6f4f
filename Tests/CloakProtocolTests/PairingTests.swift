import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

/// Linking (PROTOCOL.md §"Pairing"): payload text, expiry, mailbox id, bundle encryption and
/// the short authentication string, including a server that swaps the new device's keys (ADV-11).
@Suite("Pairing")
struct PairingTests {
    static let now: UInt64 = 1_767_225_600_000
    static let device = TestDevice(seed: 301)

    static func payload(seed: UInt64 = 1) -> PairingPayload {
        PairingPayload.create(
            signingKey: device.signing.publicKey, agreementKey: device.agreement.publicKey, nowMs: now,
            random: DeterministicRandom(seed: seed))
    }

    struct PairingVector: Decodable {
        let name, deviceSigningKeyHex, deviceAgreementKeyHex, secretHex: String
        let expiresAtMs: UInt64
        let payloadWireHex, text, mailboxIdHex, bundleKeyHex, accountIdHex, addEntryHashHex, sas: String
        let bundlePlaintextHex, bundleAdHex, bundleNonceHex, bundleHex: String
    }

    @Test("pairing.json: text, mailbox id, bundle key, SAS and bundle follow the spec's layouts")
    func vector() throws {
        let vectors = try VectorTests.load("pairing.json", as: PairingVector.self)
        #expect(vectors.count == 1)
        for v in vectors {
            #expect(v.text == "cloak1:" + v.payloadWireHex)
            let payload = try PairingPayload(text: v.text, nowMs: v.expiresAtMs - 1)
            let secret = try SymmetricKey(bytes: Hex.decode(v.secretHex))
            let domain = Array("cloak.v1.pairing.mailbox".utf8) + [0]
            #expect(Hex.encode(BLAKE2b.hash(domain, key: secret.secret, outputByteCount: 16)) == v.mailboxIdHex)
            #expect(Hex.encode(payload.mailboxID) == v.mailboxIdHex)
            let bundleKey = KeyDerivation.derive(
                from: secret, purpose: .pairing, subject: try Hex.decode(v.deviceSigningKeyHex), epoch: 0)
            #expect(Hex.encode(bundleKey.secret.copyBytes()) == v.bundleKeyHex)
            let sasInput =
                Array("cloak.v1.pairing.sas".utf8) + [0] + (try Hex.decode(v.accountIdHex))
                + (try Hex.decode(v.deviceSigningKeyHex)) + (try Hex.decode(v.deviceAgreementKeyHex))
                + (try Hex.decode(v.addEntryHashHex))
            let digest = BLAKE2b.hash(sasInput, key: secret.secret)
            let value = UInt32(digest[0]) | UInt32(digest[1]) << 8 | UInt32(digest[2]) << 16 | UInt32(digest[3]) << 24
            #expect(v.sas == String(format: "%06u", value % 1_000_000))
            let account = try AccountID(validating: Hex.decode(v.accountIdHex), field: "account")
            let entry = try EntryHash(validating: Hex.decode(v.addEntryHashHex), field: "entry")
            #expect(payload.shortAuthenticationString(account: account, addEntry: entry) == v.sas)
            #expect(Hex.encode(payload.bundleAssociatedData) == v.bundleAdHex)
            #expect(v.bundleAdHex == Hex.encode(Array("cloak.v1.pairing.bundle".utf8) + [0]) + v.mailboxIdHex)
            let bundle = try Hex.decode(v.bundleHex)
            #expect(Hex.encode(bundle.prefix(24)) == v.bundleNonceHex)
            #expect(Hex.encode(FrameCodec.serialize(try payload.openBundle(bundle))) == v.bundlePlaintextHex)
        }
    }

    @Test("payload text round-trips and both sides derive the same mailbox and bundle key")
    func roundTrip() throws {
        let payload = Self.payload()
        let parsed = try PairingPayload(text: "  " + payload.text + "\n", nowMs: Self.now + 1000)
        #expect(parsed.signingKey == payload.signingKey && parsed.agreementKey == payload.agreementKey)
        #expect(parsed.mailboxID == payload.mailboxID && parsed.mailboxID.count == 16)
        #expect(parsed.bundleKey == payload.bundleKey && parsed.expiresAtMs == Self.now + PairingPayload.lifetimeMs)
        #expect(Self.payload(seed: 2).mailboxID != payload.mailboxID)
    }

    @Test("payloads expire: after their lifetime, and when they claim more than twice the lifetime")
    func expiry() throws {
        let text = Self.payload().text
        let expires = Self.now + PairingPayload.lifetimeMs
        #expect(throws: Never.self) { try PairingPayload(text: text, nowMs: expires) }
        #expect(throws: PairingError.expired) { try PairingPayload(text: text, nowMs: expires + 1) }
        // A payload whose expiry lies further ahead than 2× the lifetime from now is refused too.
        #expect(throws: PairingError.expired) {
            try PairingPayload(text: text, nowMs: expires - 2 * PairingPayload.lifetimeMs - 1)
        }
    }

    @Test(
        "malformed payload text is refused with .malformedPayload",
        arguments: [
            "", "cloak1:", "cloak2:0801", "cloak1:zz", "cloak1:080", "hello world",
            "cloak1:" + String(repeating: "00", count: 600),
        ])
    func malformed(_ text: String) {
        #expect(throws: PairingError.malformedPayload) { try PairingPayload(text: text, nowMs: Self.now) }
    }

    @Test("a payload of another version or with a short secret is refused")
    func wrongFields() throws {
        let good = Self.payload()
        var wrongVersion = ProtoBytes()
        wrongVersion.varintField(1, 2)
        wrongVersion.bytesField(2, good.signingKey.bytes)
        wrongVersion.bytesField(3, good.agreementKey.bytes)
        wrongVersion.bytesField(4, [UInt8](repeating: 1, count: 32))
        wrongVersion.varintField(5, Self.now + 1000)
        #expect(throws: PairingError.malformedPayload) {
            try PairingPayload(text: "cloak1:" + Hex.encode(wrongVersion.bytes), nowMs: Self.now)
        }
        var shortSecret = ProtoBytes()
        shortSecret.varintField(1, 1)
        shortSecret.bytesField(2, good.signingKey.bytes)
        shortSecret.bytesField(3, good.agreementKey.bytes)
        shortSecret.bytesField(4, [UInt8](repeating: 1, count: 31))
        shortSecret.varintField(5, Self.now + 1000)
        #expect(throws: PairingError.malformedPayload) {
            try PairingPayload(text: "cloak1:" + Hex.encode(shortSecret.bytes), nowMs: Self.now)
        }
    }

    @Test("the bundle opens only with the payload's secret, and any tampering is refused")
    func bundle() throws {
        let payload = Self.payload()
        var content = Cloak_V1_PairingBundle()
        content.accountID = Data([UInt8](repeating: 4, count: 32))
        let sealed = payload.sealBundle(content, random: DeterministicRandom(seed: 9))
        #expect(try payload.openBundle(sealed) == content)
        #expect(throws: PairingError.bundleRejected) { try Self.payload(seed: 2).openBundle(sealed) }
        #expect(throws: PairingError.bundleRejected) { try payload.openBundle(Array(sealed.prefix(72))) }
        for bit in stride(from: 0, to: sealed.count * 8, by: 13) {
            #expect(throws: PairingError.bundleRejected) { try payload.openBundle(flip(sealed, bit)) }
        }
    }

    @Test("SAS is six digits and both devices compute the same one")
    func sasDigits() throws {
        let account = AccountID(unchecked: [UInt8](repeating: 3, count: 32))
        for seed in UInt64(1)...40 {
            let payload = Self.payload(seed: seed)
            let entry = EntryHash(hashing: [UInt8(seed)])
            let sas = payload.shortAuthenticationString(account: account, addEntry: entry)
            #expect(sas.count == 6 && sas.allSatisfy(\.isNumber))
            let other = try PairingPayload(text: payload.text, nowMs: Self.now)
            #expect(other.shortAuthenticationString(account: account, addEntry: entry) == sas)
        }
    }

    @Test("ADV-11 a server that swaps the new device's keys cannot match the SAS or read the bundle")
    func keySubstitution() throws {
        let genuine = Self.payload()
        let attacker = TestDevice(seed: 666)
        // The server cannot see the out-of-band payload; its best move is to present its own keys
        // with a guessed secret. The existing device, holding the real payload, adds the keys it
        // was shown: the new device's SAS (over its own keys) then differs.
        let account = AccountID(unchecked: [UInt8](repeating: 3, count: 32))
        let entry = EntryHash(hashing: [1])
        var swappedWire = ProtoBytes()
        swappedWire.varintField(1, 1)
        swappedWire.bytesField(2, attacker.signing.publicKey.bytes)
        swappedWire.bytesField(3, attacker.agreement.publicKey.bytes)
        swappedWire.bytesField(4, genuine.secret.secret.copyBytes())
        swappedWire.varintField(5, genuine.expiresAtMs)
        let swapped = try PairingPayload(text: "cloak1:" + Hex.encode(swappedWire.bytes), nowMs: Self.now)
        #expect(
            swapped.shortAuthenticationString(account: account, addEntry: entry)
                != genuine.shortAuthenticationString(account: account, addEntry: entry))
        // A bundle sealed for the swapped keys does not open for the genuine device either.
        let sealed = swapped.sealBundle(Cloak_V1_PairingBundle(), random: DeterministicRandom(seed: 3))
        #expect(throws: PairingError.bundleRejected) { try genuine.openBundle(sealed) }
    }
}
