@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
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
        let payloadWireHex, text, offerMailboxIdHex, answerMailboxIdHex, resultMailboxIdHex, pairingKeyHex: String
        let accountIdHex, offeredHeadHex, sas, offerPlaintextHex, offerAdHex, offerNonceHex, offerHex: String
    }

    /// The text of a serialised payload: prefix, hex, and the 4-byte checksum of §21.
    static func text(ofWire wire: [UInt8]) -> String {
        let checksum = BLAKE2b.hash(Array("cloak.v1.pairing.text".utf8) + [0] + wire, outputByteCount: 32).prefix(4)
        return "cloak1:" + Hex.encode(wire) + Hex.encode(Array(checksum))
    }

    @Test("pairing.json: text, mailbox ids, pairing key, SAS and offer follow the spec's layouts")
    func vector() throws {
        let vectors = try VectorTests.load("pairing.json", as: PairingVector.self)
        #expect(vectors.count == 1)
        for v in vectors {
            #expect(v.text == Self.text(ofWire: try Hex.decode(v.payloadWireHex)))
            let payload = try PairingPayload(text: v.text, nowMs: v.expiresAtMs - 1)
            let secret = try SymmetricKey(bytes: Hex.decode(v.secretHex))
            let domain = Array("cloak.v1.pairing.mailbox".utf8) + [0]
            for (stage, expected) in [("offer", v.offerMailboxIdHex), ("answer", v.answerMailboxIdHex), ("result", v.resultMailboxIdHex)] {
                #expect(Hex.encode(BLAKE2b.hash(domain + Array(stage.utf8), key: secret.secret, outputByteCount: 16)) == expected)
            }
            #expect(Hex.encode(payload.mailboxID(.offer)) == v.offerMailboxIdHex)
            let pairingKey = KeyDerivation.derive(
                from: secret, purpose: .pairing, subject: try Hex.decode(v.deviceSigningKeyHex), epoch: 0)
            #expect(Hex.encode(pairingKey.secret.copyBytes()) == v.pairingKeyHex)
            let sasInput =
                Array("cloak.v1.pairing.sas".utf8) + [0] + (try Hex.decode(v.accountIdHex))
                + (try Hex.decode(v.deviceSigningKeyHex)) + (try Hex.decode(v.deviceAgreementKeyHex))
                + (try Hex.decode(v.offeredHeadHex))
            let digest = BLAKE2b.hash(sasInput, key: secret.secret)
            let value = UInt32(digest[0]) | UInt32(digest[1]) << 8 | UInt32(digest[2]) << 16 | UInt32(digest[3]) << 24
            #expect(v.sas == String(format: "%06u", value % 1_000_000))
            let account = try AccountID(validating: Hex.decode(v.accountIdHex), field: "account")
            let head = try EntryHash(validating: Hex.decode(v.offeredHeadHex), field: "entry")
            #expect(payload.shortAuthenticationString(account: account, offeredHead: head) == v.sas)
            #expect(Hex.encode(payload.associatedData(.offer)) == v.offerAdHex)
            #expect(v.offerAdHex == Hex.encode(Array("cloak.v1.pairing.bundle".utf8) + [0]) + v.offerMailboxIdHex)
            let offer = try Hex.decode(v.offerHex)
            #expect(Hex.encode(offer.prefix(24)) == v.offerNonceHex)
            #expect(Hex.encode(try payload.open(offer, for: .offer)) == v.offerPlaintextHex)
        }
    }

    @Test("payload text round-trips and both sides derive the same mailboxes and pairing key")
    func roundTrip() throws {
        let payload = Self.payload()
        let parsed = try PairingPayload(text: "  " + payload.text + "\n", nowMs: Self.now + 1000)
        #expect(parsed.signingKey == payload.signingKey && parsed.agreementKey == payload.agreementKey)
        for stage in PairingPayload.Stage.allCases {
            #expect(parsed.mailboxID(stage) == payload.mailboxID(stage) && parsed.mailboxID(stage).count == 16)
            #expect(Self.payload(seed: 2).mailboxID(stage) != payload.mailboxID(stage))
        }
        #expect(Set(PairingPayload.Stage.allCases.map { payload.mailboxID($0) }).count == 3)
        #expect(parsed.pairingKey == payload.pairingKey && parsed.expiresAtMs == Self.now + PairingPayload.lifetimeMs)
    }

    @Test("ADV-48 an invitation with any one character changed, dropped or doubled is refused as a typo")
    func typo() throws {
        let text = Self.payload().text
        let characters = Array(text)
        let digits = Array("0123456789abcdef")
        var refused = 0
        for index in PairingPayload.textPrefix.count..<characters.count {
            var changed = characters
            changed[index] = digits[(digits.firstIndex(of: characters[index])! + 1 + index % 15) % 16]
            #expect(throws: PairingError.typo) { try PairingPayload(text: String(changed), nowMs: Self.now) }
            var dropped = characters
            dropped.remove(at: index)
            #expect(throws: PairingError.typo) { try PairingPayload(text: String(dropped), nowMs: Self.now) }
            var doubled = characters
            doubled.insert(characters[index], at: index)
            #expect(throws: PairingError.typo) { try PairingPayload(text: String(doubled), nowMs: Self.now) }
            refused += 3
        }
        #expect(refused > 3 * 150)
        // Upper case and line breaks are not typos.
        #expect(throws: Never.self) { try PairingPayload(text: text.uppercased().replacingOccurrences(of: "CLOAK1:", with: "cloak1:\n"), nowMs: Self.now) }
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
        "text that is no invitation is .malformedPayload; an invitation's broken digits are .typo",
        arguments: [
            ("", PairingError.malformedPayload), ("cloak2:0801", .malformedPayload), ("hello world", .malformedPayload),
            ("cloak1:", .typo), ("cloak1:zz", .typo), ("cloak1:080", .typo),
            ("cloak1:" + String(repeating: "00", count: 600), .typo),
            (text(ofWire: [UInt8](repeating: 0, count: 600)), .malformedPayload),
        ])
    func malformed(_ text: String, _ error: PairingError) {
        #expect(throws: error) { try PairingPayload(text: text, nowMs: Self.now) }
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
            try PairingPayload(text: Self.text(ofWire: wrongVersion.bytes), nowMs: Self.now)
        }
        var shortSecret = ProtoBytes()
        shortSecret.varintField(1, 1)
        shortSecret.bytesField(2, good.signingKey.bytes)
        shortSecret.bytesField(3, good.agreementKey.bytes)
        shortSecret.bytesField(4, [UInt8](repeating: 1, count: 31))
        shortSecret.varintField(5, Self.now + 1000)
        #expect(throws: PairingError.malformedPayload) {
            try PairingPayload(text: Self.text(ofWire: shortSecret.bytes), nowMs: Self.now)
        }
    }

    @Test("a stage's message opens only with the payload's secret and in its own stage; tampering is refused")
    func stages() throws {
        let payload = Self.payload()
        var offer = Cloak_V1_PairingOffer()
        offer.accountID = Data([UInt8](repeating: 4, count: 32))
        let sealed = payload.seal(FrameCodec.serialize(offer), for: .offer, random: DeterministicRandom(seed: 9))
        #expect(try payload.open(Cloak_V1_PairingOffer.self, sealed, for: .offer) == offer)
        // A "no" serialises to no bytes at all and still opens (a regression: it was refused).
        let no = payload.seal(FrameCodec.serialize(Cloak_V1_PairingAnswer()), for: .answer, random: DeterministicRandom(seed: 4))
        #expect(try payload.open(Cloak_V1_PairingAnswer.self, no, for: .answer).accepted == false)
        #expect(throws: PairingError.bundleRejected) { try Self.payload(seed: 2).open(sealed, for: .offer) }
        // A message moved to another mailbox (an answer replayed as the result) does not open.
        #expect(throws: PairingError.bundleRejected) { try payload.open(sealed, for: .result) }
        #expect(throws: PairingError.bundleRejected) { try payload.open(Array(sealed.prefix(72)), for: .offer) }
        for bit in stride(from: 0, to: sealed.count * 8, by: 13) {
            #expect(throws: PairingError.bundleRejected) { try payload.open(flip(sealed, bit), for: .offer) }
        }
    }

    @Test("SAS is six digits and both devices compute the same one")
    func sasDigits() throws {
        let account = AccountID(unchecked: [UInt8](repeating: 3, count: 32))
        for seed in UInt64(1)...40 {
            let payload = Self.payload(seed: seed)
            let entry = EntryHash(hashing: [UInt8(seed)])
            let sas = payload.shortAuthenticationString(account: account, offeredHead: entry)
            #expect(sas.count == 6 && sas.allSatisfy(\.isNumber))
            let other = try PairingPayload(text: payload.text, nowMs: Self.now)
            #expect(other.shortAuthenticationString(account: account, offeredHead: entry) == sas)
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
        let swapped = try PairingPayload(text: Self.text(ofWire: swappedWire.bytes), nowMs: Self.now)
        #expect(
            swapped.shortAuthenticationString(account: account, offeredHead: entry)
                != genuine.shortAuthenticationString(account: account, offeredHead: entry))
        // A bundle sealed for the swapped keys does not open for the genuine device either.
        let sealed = swapped.seal(FrameCodec.serialize(Cloak_V1_PairingOffer()), for: .offer, random: DeterministicRandom(seed: 3))
        #expect(throws: PairingError.bundleRejected) { try genuine.open(sealed, for: .offer) }
    }
}
