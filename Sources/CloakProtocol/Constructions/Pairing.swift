@_spi(Randomness) public import CloakCrypto
import Foundation
public import SwiftProtobuf

/// Linking a new device (PROTOCOL.md §"Pairing"). The new device shows a ``PairingPayload``
/// (its public keys and a one-time 32-byte secret) out of band, as a QR code or text with a
/// checksum; the server never sees the secret. From it both sides derive three mailboxes and
/// one key:
///
///     mailbox(stage) = BLAKE2b-128(key: secret, "cloak.v1.pairing.mailbox\0" ‖ stage)   stage: offer, answer, result
///     pairing key    = KDF(secret, "pairing", subject: new device's Ed25519 key, epoch 0)
///     SAS            = LE32(BLAKE2b-256(key: secret, "cloak.v1.pairing.sas\0" ‖ account ‖ new signing key
///                       ‖ new agreement key ‖ offered log head)[0..<4]) mod 10^6, as 6 digits
///
/// Nothing is committed until both users said the codes match: the existing device offers the
/// log (offer mailbox), the new device answers (answer mailbox), and only after both said yes
/// does the existing device add it and report the result (result mailbox). Because the keys
/// travel out of band, a server that swaps them cannot make the SAS match or read, forge or
/// move a mailbox message (ADV-11, ADV-48).
///
/// ```swift
/// let payload = PairingPayload.create(signingKey: pk, agreementKey: xpk, nowMs: t)
/// let text = payload.text              // show as QR / copyable text
/// let again = try PairingPayload(text: text, nowMs: t2)
/// ```
public struct PairingPayload: Sendable, Equatable {
    /// How long a payload stays valid.
    public static let lifetimeMs: UInt64 = 10 * 60 * 1000
    /// The text's prefix.
    public static let textPrefix = "cloak1:"
    /// Hex digits of the text's checksum.
    static let checksumHexDigits = 8

    /// The three mailboxes of one pairing, in the order they are used.
    public enum Stage: String, Sendable, CaseIterable {
        /// The existing device's offer (the account's log; nothing committed).
        case offer
        /// The new device's answer after its user compared the codes.
        case answer
        /// The existing device's result: added (after both said yes) or not.
        case result
    }

    /// The new device's Ed25519 key.
    public let signingKey: Ed25519PublicKey
    /// The new device's X25519 key.
    public let agreementKey: X25519PublicKey
    /// The one-time secret (32 bytes, used as a key).
    public let secret: SymmetricKey
    /// Expiry, ms since the Unix epoch.
    public let expiresAtMs: UInt64

    /// A fresh payload with a random secret from the operating system.
    public static func create(signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey, nowMs: UInt64) -> PairingPayload {
        create(signingKey: signingKey, agreementKey: agreementKey, nowMs: nowMs, random: SystemRandom())
    }

    /// A fresh payload with a random secret (a seeded source only in the simulator and tests).
    @_spi(Randomness)
    public static func create(
        signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey, nowMs: UInt64, random: any RandomSource
    ) -> PairingPayload {
        PairingPayload(
            signingKey: signingKey, agreementKey: agreementKey, secret: SymmetricKey.random(using: random),
            expiresAtMs: nowMs + lifetimeMs)
    }

    package init(
        signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey, secret: SymmetricKey, expiresAtMs: UInt64
    ) {
        self.signingKey = signingKey
        self.agreementKey = agreementKey
        self.secret = secret
        self.expiresAtMs = expiresAtMs
    }

    /// The serialised `PairingPayload` (holds the secret: wipe copies).
    public var wire: [UInt8] {
        var m = Cloak_V1_PairingPayload()
        m.version = ProtocolVersion.current
        m.deviceSigningKey = Data(signingKey.bytes)
        m.deviceAgreementKey = Data(agreementKey.bytes)
        var raw = secret.secret.copyBytes()
        defer { SecretBytes.wipe(&raw) }
        m.secret = Data(raw)
        m.expiresAtMs = expiresAtMs
        return FrameCodec.serialize(m)
    }

    /// The payload as text: `cloak1:` ‖ hex(payload) ‖ hex(checksum), where checksum is the
    /// first 4 bytes of `BLAKE2b-256("cloak.v1.pairing.text\0" ‖ payload)`: one mistyped or
    /// missing character is refused as a typo rather than read as another key.
    public var text: String {
        var bytes = wire
        defer { SecretBytes.wipe(&bytes) }
        return Self.textPrefix + Hex.encode(bytes) + Hex.encode(Self.checksum(bytes))
    }

    /// Parses text from ``text`` (whitespace anywhere is ignored, so a text wrapped over lines
    /// still reads); refuses typos, malformed and expired payloads.
    public init(text: String, nowMs: UInt64) throws(PairingError) {
        let compact = String(text.unicodeScalars.filter { !$0.properties.isWhitespace })
        guard compact.lowercased().hasPrefix(Self.textPrefix) else { throw .malformedPayload }
        let digits = compact.dropFirst(Self.textPrefix.count).lowercased()
        guard digits.count > Self.checksumHexDigits, digits.count % 2 == 0,
            var bytes = try? Hex.decode(String(digits.dropLast(Self.checksumHexDigits))),
            let given = try? Hex.decode(String(digits.suffix(Self.checksumHexDigits)))
        else { throw .typo }
        defer { SecretBytes.wipe(&bytes) }
        guard ConstantTime.equals(Self.checksum(bytes), given) else { throw .typo }
        try self.init(wire: bytes, nowMs: nowMs)
    }

    /// Parses the serialised payload (a stored pending link); refuses malformed and expired ones.
    public init(wire bytes: [UInt8], nowMs: UInt64) throws(PairingError) {
        try self.init(storedWire: bytes)
        guard nowMs <= expiresAtMs, expiresAtMs <= nowMs + Self.lifetimeMs * 2 else { throw .expired }
    }

    /// Parses a payload this device stored itself, whatever its expiry.
    package init(storedWire bytes: [UInt8]) throws(PairingError) {
        guard bytes.count < 512,
            let m = try? FrameCodec.parse(Cloak_V1_PairingPayload.self, from: bytes, what: "pairing payload"),
            m.version == ProtocolVersion.current, m.secret.count == 32,
            let signing = try? Ed25519PublicKey(bytes: Array(m.deviceSigningKey)),
            let agreement = try? X25519PublicKey(bytes: Array(m.deviceAgreementKey)),
            let secret = try? SymmetricKey(bytes: Array(m.secret))
        else { throw .malformedPayload }
        self.init(signingKey: signing, agreementKey: agreement, secret: secret, expiresAtMs: m.expiresAtMs)
    }

    static func checksum(_ payload: [UInt8]) -> [UInt8] {
        Array(BLAKE2b.hash(Domain.pairingText.bytes + payload, outputByteCount: 32).prefix(4))
    }

    /// The new device's id.
    public var deviceID: DeviceID { DeviceID(signingKey: signingKey) }

    /// The mailbox of one stage.
    public func mailboxID(_ stage: Stage) -> [UInt8] {
        var hasher = BLAKE2b.Hasher(outputByteCount: 16, key: secret.secret)
        hasher.update(Domain.pairingMailbox.bytes)
        hasher.update(Array(stage.rawValue.utf8))
        return hasher.finalize()
    }

    /// The key every mailbox message is encrypted under.
    public var pairingKey: SymmetricKey {
        KeyDerivation.derive(from: secret, purpose: .pairing, subject: signingKey.bytes, epoch: 0)
    }

    /// The 6-digit short authentication string both devices display, over the account and the
    /// log head the existing device offered.
    public func shortAuthenticationString(account: AccountID, offeredHead: EntryHash) -> String {
        var hasher = BLAKE2b.Hasher(outputByteCount: 32, key: secret.secret)
        hasher.update(Domain.pairingSAS.bytes)
        hasher.update(account.bytes)
        hasher.update(signingKey.bytes)
        hasher.update(agreementKey.bytes)
        hasher.update(offeredHead.bytes)
        let digest = hasher.finalize()
        let value = UInt32(digest[0]) | UInt32(digest[1]) << 8 | UInt32(digest[2]) << 16 | UInt32(digest[3]) << 24
        let digits = String(value % 1_000_000)
        return String(repeating: "0", count: 6 - digits.count) + digits
    }

    /// Associated data of a stage's message: the domain and that stage's mailbox id, so a
    /// message cannot be moved to another stage.
    public func associatedData(_ stage: Stage) -> [UInt8] { Domain.pairingBundle.bytes + mailboxID(stage) }

    /// Encrypts a stage's message (committed AEAD): nonce ‖ commitment ‖ ciphertext.
    public func seal(_ message: [UInt8], for stage: Stage) -> [UInt8] {
        seal(message, for: stage, random: SystemRandom())
    }

    /// ``seal(_:for:)`` with an injected random source (vectors, the simulator).
    @_spi(Randomness)
    public func seal(_ message: [UInt8], for stage: Stage, random: any RandomSource) -> [UInt8] {
        let sealed = CommittedAEAD.seal(message, key: pairingKey, associatedData: associatedData(stage), using: random)
        return sealed.nonce + sealed.commitment + sealed.ciphertext
    }

    /// Decrypts a stage's mailbox payload.
    public func open(_ payload: [UInt8], for stage: Stage) throws(PairingError) -> [UInt8] {
        // An empty plaintext is valid (a "no" answer serialises to no bytes): nonce, commitment, tag.
        guard payload.count >= 24 + 32 + 16 else { throw .bundleRejected }
        let box = CommittedAEAD.SealedBox(
            nonce: Array(payload[0..<24]), ciphertext: Array(payload[56...]), commitment: Array(payload[24..<56]))
        guard let plain = try? CommittedAEAD.open(box, key: pairingKey, associatedData: associatedData(stage)) else {
            throw .bundleRejected
        }
        return plain
    }

    /// Opens and parses a stage's message.
    public func open<M: SwiftProtobuf.Message>(_ type: M.Type, _ payload: [UInt8], for stage: Stage) throws(PairingError) -> M {
        var plain = try open(payload, for: stage)
        defer { SecretBytes.wipe(&plain) }
        guard let message = try? FrameCodec.parse(M.self, from: plain, what: "pairing \(stage.rawValue)") else {
            throw .bundleRejected
        }
        return message
    }

    /// Two payloads are the same pairing when their bytes are.
    public static func == (lhs: PairingPayload, rhs: PairingPayload) -> Bool {
        var (l, r) = (lhs.wire, rhs.wire)
        defer {
            SecretBytes.wipe(&l)
            SecretBytes.wipe(&r)
        }
        return ConstantTime.equals(l, r)
    }
}

/// Why pairing failed.
public enum PairingError: Error, Equatable, Sendable {
    /// The payload text is not a Cloak pairing payload.
    case malformedPayload
    /// The text starts like an invitation but its checksum does not match: a character was
    /// mistyped, added or left out.
    case typo
    /// The payload's lifetime is over.
    case expired
    /// A mailbox message does not decrypt with this payload's secret.
    case bundleRejected
}
