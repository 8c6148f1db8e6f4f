public import CloakCrypto
import Foundation

/// Linking a new device (PROTOCOL.md §"Pairing"). The new device shows a ``PairingPayload``
/// (its public keys and a one-time 32-byte secret) out of band, as a QR code or text; the
/// server never sees the secret. From it both sides derive:
///
///     mailbox id = BLAKE2b-128(key: secret, "cloak.v1.pairing.mailbox\0")
///     bundle key = KDF(secret, "pairing", subject: new device's Ed25519 key, epoch 0)
///     SAS        = LE32(BLAKE2b-256(key: secret, "cloak.v1.pairing.sas\0" ‖ account ‖ new signing key
///                   ‖ new agreement key ‖ add-entry hash)[0..<4]) mod 10^6, as 6 digits
///
/// Because the keys travel out of band, a server that swaps them cannot make the SAS match or
/// open the bundle (ADV-11).
///
/// ```swift
/// let payload = PairingPayload.create(signingKey: pk, agreementKey: xpk, now: t, random: rng)
/// let text = payload.text              // show as QR / copyable text
/// let again = try PairingPayload(text: text, now: t2)
/// ```
public struct PairingPayload: Sendable {
    /// How long a payload stays valid.
    public static let lifetimeMs: UInt64 = 10 * 60 * 1000

    /// The new device's Ed25519 key.
    public let signingKey: Ed25519PublicKey
    /// The new device's X25519 key.
    public let agreementKey: X25519PublicKey
    /// The one-time secret (32 bytes, used as a key).
    public let secret: SymmetricKey
    /// Expiry, ms since the Unix epoch.
    public let expiresAtMs: UInt64

    /// A fresh payload with a random secret.
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

    /// The payload as text: `cloak1:` followed by the hex of the serialised `PairingPayload`.
    public var text: String {
        var m = Cloak_V1_PairingPayload()
        m.version = ProtocolVersion.current
        m.deviceSigningKey = Data(signingKey.bytes)
        m.deviceAgreementKey = Data(agreementKey.bytes)
        m.secret = Data(secret.secret.copyBytes())
        m.expiresAtMs = expiresAtMs
        var bytes = FrameCodec.serialize(m)
        defer { SecretBytes.wipe(&bytes) }
        return "cloak1:" + Hex.encode(bytes)
    }

    /// Parses text from ``text``; refuses malformed or expired payloads.
    public init(text: String, nowMs: UInt64) throws(PairingError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("cloak1:"), let bytes = try? Hex.decode(String(trimmed.dropFirst(7))),
            bytes.count < 512,
            let m = try? FrameCodec.parse(Cloak_V1_PairingPayload.self, from: bytes, what: "pairing payload"),
            m.version == ProtocolVersion.current, m.secret.count == 32,
            let signing = try? Ed25519PublicKey(bytes: Array(m.deviceSigningKey)),
            let agreement = try? X25519PublicKey(bytes: Array(m.deviceAgreementKey)),
            let secret = try? SymmetricKey(bytes: Array(m.secret))
        else { throw .malformedPayload }
        guard nowMs <= m.expiresAtMs, m.expiresAtMs <= nowMs + Self.lifetimeMs * 2 else { throw .expired }
        self.init(
            signingKey: signing, agreementKey: agreement, secret: secret,
            expiresAtMs: m.expiresAtMs)
    }

    /// The mailbox the bundle goes to.
    public var mailboxID: [UInt8] {
        var hasher = BLAKE2b.Hasher(outputByteCount: 16, key: secret.secret)
        hasher.update(Domain.pairingMailbox.bytes)
        return hasher.finalize()
    }

    /// The key the bundle is encrypted under.
    public var bundleKey: SymmetricKey {
        KeyDerivation.derive(from: secret, purpose: .pairing, subject: signingKey.bytes, epoch: 0)
    }

    /// The 6-digit short authentication string both devices display.
    public func shortAuthenticationString(account: AccountID, addEntry: EntryHash) -> String {
        var hasher = BLAKE2b.Hasher(outputByteCount: 32, key: secret.secret)
        hasher.update(Domain.pairingSAS.bytes)
        hasher.update(account.bytes)
        hasher.update(signingKey.bytes)
        hasher.update(agreementKey.bytes)
        hasher.update(addEntry.bytes)
        let digest = hasher.finalize()
        let value = UInt32(digest[0]) | UInt32(digest[1]) << 8 | UInt32(digest[2]) << 16 | UInt32(digest[3]) << 24
        let digits = String(value % 1_000_000)
        return String(repeating: "0", count: 6 - digits.count) + digits
    }

    /// Associated data of the encrypted bundle.
    public var bundleAssociatedData: [UInt8] { Domain.pairingBundle.bytes + mailboxID }

    /// Encrypts a bundle for the mailbox: nonce ‖ commitment ‖ ciphertext.
    public func sealBundle(_ bundle: Cloak_V1_PairingBundle, random: any RandomSource) -> [UInt8] {
        let sealed = CommittedAEAD.seal(
            FrameCodec.serialize(bundle), key: bundleKey, associatedData: bundleAssociatedData, using: random)
        return sealed.nonce + sealed.commitment + sealed.ciphertext
    }

    /// Decrypts a mailbox payload.
    public func openBundle(_ payload: [UInt8]) throws(PairingError) -> Cloak_V1_PairingBundle {
        guard payload.count > 24 + 32 + 16 else { throw .bundleRejected }
        let box = CommittedAEAD.SealedBox(
            nonce: Array(payload[0..<24]), ciphertext: Array(payload[56...]), commitment: Array(payload[24..<56]))
        guard let plain = try? CommittedAEAD.open(box, key: bundleKey, associatedData: bundleAssociatedData),
            let bundle = try? FrameCodec.parse(Cloak_V1_PairingBundle.self, from: plain, what: "pairing bundle")
        else { throw .bundleRejected }
        return bundle
    }
}

/// Why pairing failed.
public enum PairingError: Error, Equatable, Sendable {
    /// The payload text is not a Cloak pairing payload.
    case malformedPayload
    /// The payload's lifetime is over.
    case expired
    /// The mailbox content does not decrypt with this payload's secret.
    case bundleRejected
}
