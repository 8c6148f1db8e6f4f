@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

/// Key envelopes (PROTOCOL.md §"Key envelopes"): each wrap is bound to (account, epoch,
/// recipient) inside the sealed box and signed by its sender, so a swapped, moved or forged wrap
/// is reported as such instead of yielding a wrong key (ADV-40, ADV-10).
@Suite("Key envelopes")
struct KeyEnvelopeTests {
    static let account = AccountID(unchecked: [UInt8](repeating: 0xac, count: 32))
    static let sender = TestDevice(seed: 201)
    static let alice = TestDevice(seed: 202)
    static let bob = TestDevice(seed: 203)
    static let key = SymmetricKey.random(using: DeterministicRandom(seed: 204))

    static func envelope(to device: TestDevice, epoch: UInt64 = 2, seed: UInt64 = 1) throws -> KeyEnvelope {
        try KeyEnvelope.seal(
            key, epoch: epoch, account: account, recipient: device.id, recipientKey: device.agreement.publicKey,
            sender: sender.id, signer: sender.signing, random: DeterministicRandom(seed: seed))
    }

    /// An envelope whose sealed plaintext binds (`account`, `epoch`, `boundTo`) but which is sealed to
    /// `sealedTo`'s key and signed by the sender for `recipient`: what a malicious member could make.
    static func crafted(
        boundTo: DeviceID, sealedTo: TestDevice, recipient: DeviceID, epoch: UInt64 = 2, boundEpoch: UInt64 = 2,
        boundAccount: AccountID = account
    ) throws -> KeyEnvelope {
        let inner =
            Array("cloak.v1.epoch-key".utf8) + [0] + boundAccount.bytes + boundEpoch.littleEndianBytes
            + boundTo.bytes + key.secret.copyBytes()
        var m = Cloak_V1_KeyEnvelope()
        m.version = 1
        m.accountID = Data(account.bytes)
        m.epoch = epoch
        m.sender = Data(sender.id.bytes)
        m.recipient = Data(recipient.bytes)
        m.sealedKey = Data(
            try SealedBox.seal(inner, to: sealedTo.agreement.publicKey, using: DeterministicRandom(seed: 9)))
        m.signature = Data([UInt8](repeating: 0, count: 64))
        m.signature = Data(sender.signing.signature(for: try KeyEnvelope(message: m).signedMessage))
        return try KeyEnvelope(message: m)
    }

    static func open(_ envelope: KeyEnvelope, as device: TestDevice) throws(KeyEnvelopeError) -> SymmetricKey {
        try envelope.open(with: device.agreement, recipient: device.id, senderKey: sender.signing.publicKey)
    }

    @Test("an envelope opens for its recipient to the sealed key, after a message round trip")
    func roundTrip() throws {
        let envelope = try KeyEnvelope(message: Self.envelope(to: Self.alice).message)
        #expect(try Self.open(envelope, as: Self.alice) == Self.key)
    }

    @Test("ADV-40 the server swaps whole envelopes between recipients: wrongRecipient, others unaffected")
    func swappedEnvelopes() throws {
        let forAlice = try Self.envelope(to: Self.alice)
        let forBob = try Self.envelope(to: Self.bob, seed: 2)
        #expect(throws: KeyEnvelopeError.wrongRecipient) { try Self.open(forAlice, as: Self.bob) }
        #expect(try Self.open(forBob, as: Self.bob) == Self.key)
    }

    @Test("ADV-40 the server rewrites the recipient or moves a wrap into another envelope: badSignature")
    func movedWraps() throws {
        let forAlice = try Self.envelope(to: Self.alice)
        let forBob = try Self.envelope(to: Self.bob, seed: 2)
        var m = forAlice.message
        m.recipient = Data(Self.bob.id.bytes)
        #expect(throws: KeyEnvelopeError.badSignature) { try Self.open(KeyEnvelope(message: m), as: Self.bob) }
        m = forBob.message
        m.sealedKey = forAlice.message.sealedKey
        #expect(throws: KeyEnvelopeError.badSignature) { try Self.open(KeyEnvelope(message: m), as: Self.bob) }
        m = forBob.message
        m.epoch = 3
        #expect(throws: KeyEnvelopeError.badSignature) { try Self.open(KeyEnvelope(message: m), as: Self.bob) }
    }

    @Test("ADV-10 an envelope signed by a key other than the named sender's is refused")
    func forgedSender() throws {
        let envelope = try Self.envelope(to: Self.alice)
        #expect(throws: KeyEnvelopeError.badSignature) {
            try envelope.open(
                with: Self.alice.agreement, recipient: Self.alice.id, senderKey: Self.bob.signing.publicKey)
        }
    }

    @Test("ADV-40 a member's correctly signed wrap that binds another recipient, epoch or account: bindingMismatch")
    func bindingMismatch() throws {
        let otherRecipient = try Self.crafted(boundTo: Self.alice.id, sealedTo: Self.bob, recipient: Self.bob.id)
        #expect(throws: KeyEnvelopeError.bindingMismatch) { try Self.open(otherRecipient, as: Self.bob) }
        let otherEpoch = try Self.crafted(
            boundTo: Self.bob.id, sealedTo: Self.bob, recipient: Self.bob.id, boundEpoch: 1)
        #expect(throws: KeyEnvelopeError.bindingMismatch) { try Self.open(otherEpoch, as: Self.bob) }
        let otherAccount = try Self.crafted(
            boundTo: Self.bob.id, sealedTo: Self.bob, recipient: Self.bob.id,
            boundAccount: AccountID(unchecked: [UInt8](repeating: 1, count: 32)))
        #expect(throws: KeyEnvelopeError.bindingMismatch) { try Self.open(otherAccount, as: Self.bob) }
        let honest = try Self.crafted(boundTo: Self.bob.id, sealedTo: Self.bob, recipient: Self.bob.id)
        #expect(try Self.open(honest, as: Self.bob) == Self.key)
    }

    @Test("a wrap sealed to another device's key does not open: cannotOpen")
    func cannotOpen() throws {
        let sealedToAlice = try Self.crafted(boundTo: Self.bob.id, sealedTo: Self.alice, recipient: Self.bob.id)
        #expect(throws: KeyEnvelopeError.cannotOpen) { try Self.open(sealedToAlice, as: Self.bob) }
    }

    @Test("shape: wrong signature or sealed-key length, wrong id lengths, unknown version are refused")
    func shape() throws {
        let good = try Self.envelope(to: Self.alice).message
        var m = good
        m.signature = Data(Array(good.signature.prefix(63)))
        #expect(throws: ProtocolError.invalidField("envelope signature must be 64 bytes")) {
            try KeyEnvelope(message: m)
        }
        m = good
        m.sealedKey = Data(Array(good.sealedKey) + [0])
        #expect(throws: ProtocolError.invalidField("sealed key has the wrong length")) { try KeyEnvelope(message: m) }
        m = good
        m.recipient = Data([1, 2, 3])
        #expect(throws: ProtocolError.invalidField("recipient must be 16 bytes, got 3")) { try KeyEnvelope(message: m) }
        m = good
        m.version = 0
        #expect(throws: ProtocolError.unsupportedVersion(0)) { try KeyEnvelope(message: m) }
    }
}

/// The authentication challenge (PROTOCOL.md §"Authentication").
@Suite("Authentication challenge")
struct AuthChallengeTests {
    @Test("a response verifies only for its nonce, account, device and key")
    func binding() {
        let device = TestDevice(seed: 1)
        let other = TestDevice(seed: 2)
        let nonce = [UInt8](repeating: 3, count: 32)
        let account = AccountID(unchecked: [UInt8](repeating: 4, count: 32))
        let signature = AuthChallenge.sign(serverNonce: nonce, account: account, device: device.id, key: device.signing)
        #expect(
            AuthChallenge.verify(
                signature, serverNonce: nonce, account: account, device: device.id,
                key: device.signing.publicKey))
        // A replay against a fresh nonce, another account, another device id or key fails.
        #expect(
            !AuthChallenge.verify(
                signature, serverNonce: flip(nonce, 0), account: account, device: device.id,
                key: device.signing.publicKey))
        #expect(
            !AuthChallenge.verify(
                signature, serverNonce: nonce, account: AccountID(unchecked: flip(account.bytes, 1)),
                device: device.id, key: device.signing.publicKey))
        #expect(
            !AuthChallenge.verify(
                signature, serverNonce: nonce, account: account, device: other.id,
                key: device.signing.publicKey))
        #expect(
            !AuthChallenge.verify(
                signature, serverNonce: nonce, account: account, device: device.id,
                key: other.signing.publicKey))
        #expect(
            !AuthChallenge.verify(
                signature, serverNonce: Array(nonce.prefix(31)), account: account,
                device: device.id, key: device.signing.publicKey))
    }
}
