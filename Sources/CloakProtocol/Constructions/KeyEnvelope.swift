@_spi(Randomness) public import CloakCrypto
import Foundation

/// An epoch key sealed to one device and signed by the device that sealed it
/// (PROTOCOL.md §"Key envelopes").
///
///     sealed    = crypto_box_seal("cloak.v1.epoch-key\0" ‖ account ‖ LE64 epoch ‖ recipient ‖ key,
///                                 recipient X25519 key)
///     signed    = "cloak.v1.key-envelope\0" ‖ LE32 version ‖ account ‖ LE64 epoch ‖ sender
///                 ‖ recipient ‖ LE64(|sealed|) ‖ sealed
///
/// The binding inside the sealed box stops a server from moving an envelope to another
/// recipient, epoch or account (ADV-40); the signature stops it from making envelopes of its
/// own (a sealed box alone is anonymous; ADV-10).
///
/// ```swift
/// let envelope = try KeyEnvelope.seal(epochKey, epoch: 2, account: account, to: (id, x25519),
///                                     sender: myID, signer: mySigningKey, random: rng)
/// let key = try envelope.open(with: myX25519, recipient: myID, senderKey: senderSigningKey)
/// ```
public struct KeyEnvelope: Sendable, Hashable {
    /// Construction version (1).
    public let version: UInt32
    /// The account.
    public let account: AccountID
    /// The epoch whose key this carries.
    public let epoch: UInt64
    /// The sealing device.
    public let sender: DeviceID
    /// The device that can open it.
    public let recipient: DeviceID
    /// The sealed box.
    public let sealedKey: [UInt8]
    /// The sender's signature.
    public let signature: [UInt8]

    /// The exact signed bytes.
    public var signedMessage: [UInt8] {
        var w = CanonicalWriter(domain: .keyEnvelope, reserving: 200)
        w.u32(version)
        w.fixed(account)
        w.u64(epoch)
        w.fixed(sender)
        w.fixed(recipient)
        w.lengthPrefixed(sealedKey)
        return w.bytes
    }

    package static func innerPlaintext(account: AccountID, epoch: UInt64, recipient: DeviceID, key: [UInt8]) -> [UInt8] {
        var w = CanonicalWriter(domain: .epochKey, reserving: 120)
        w.fixed(account)
        w.u64(epoch)
        w.fixed(recipient)
        w.raw(key)
        return w.bytes
    }

    /// Seals and signs `key` for one recipient.
    @_spi(Randomness)
    public static func seal(
        _ key: SymmetricKey, epoch: UInt64, account: AccountID, recipient: DeviceID, recipientKey: X25519PublicKey,
        sender: DeviceID, signer: Ed25519PrivateKey, random: any RandomSource
    ) throws(CryptoError) -> KeyEnvelope {
        var raw = key.secret.copyBytes()
        var inner = innerPlaintext(account: account, epoch: epoch, recipient: recipient, key: raw)
        defer {
            SecretBytes.wipe(&raw)
            SecretBytes.wipe(&inner)
        }
        let sealed = try SealedBox.seal(inner, to: recipientKey, using: random)
        let unsigned = KeyEnvelope(
            version: ProtocolVersion.current, account: account, epoch: epoch, sender: sender, recipient: recipient,
            sealedKey: sealed, signature: [])
        return KeyEnvelope(
            version: unsigned.version, account: account, epoch: epoch, sender: sender, recipient: recipient,
            sealedKey: sealed, signature: signer.signature(for: unsigned.signedMessage))
    }

    /// Verifies the sender's signature, opens the box and checks the binding. Throws
    /// ``KeyEnvelopeError`` naming the failed check.
    public func open(with recipientKey: X25519PrivateKey, recipient me: DeviceID, senderKey: Ed25519PublicKey)
        throws(KeyEnvelopeError) -> SymmetricKey
    {
        guard recipient == me else { throw .wrongRecipient }
        guard DeviceID(signingKey: senderKey) == sender, senderKey.isValidSignature(signature, for: signedMessage) else {
            throw .badSignature
        }
        let inner: SecretBytes
        do { inner = try SealedBox.openSecret(sealedKey, with: recipientKey) } catch { throw .cannotOpen }
        let prefixLength = Domain.epochKey.bytes.count + 32 + 8 + 16
        guard inner.count == prefixLength + 32 else { throw .bindingMismatch }
        let expectedPrefix = Self.innerPlaintext(account: account, epoch: epoch, recipient: me, key: [])
        let bound = inner.withUnsafeBytes { Array($0.prefix(prefixLength)) }
        guard ConstantTime.equals(bound, expectedPrefix) else { throw .bindingMismatch }
        let key = SecretBytes(count: 32) { out in
            inner.withUnsafeBytes { raw in
                for i in 0..<32 { out[i] = raw[prefixLength + i] }
            }
        }
        do { return try SymmetricKey(key) } catch { throw .bindingMismatch }
    }

    /// The protobuf message.
    public var message: Cloak_V1_KeyEnvelope {
        var m = Cloak_V1_KeyEnvelope()
        m.version = version
        m.accountID = Data(account.bytes)
        m.epoch = epoch
        m.sender = Data(sender.bytes)
        m.recipient = Data(recipient.bytes)
        m.sealedKey = Data(sealedKey)
        m.signature = Data(signature)
        return m
    }

    /// Shape-checks a received envelope.
    public init(message m: Cloak_V1_KeyEnvelope) throws(ProtocolError) {
        guard ProtocolVersion.supported.contains(m.version) else { throw .unsupportedVersion(m.version) }
        guard m.signature.count == 64 else { throw .invalidField("envelope signature must be 64 bytes") }
        // A conversation key sealed to an assistant is another construction (PROTOCOL.md §29).
        guard m.conversationID.isEmpty else { throw .invalidField("a conversation-key envelope is not an epoch-key envelope") }
        guard m.sealedKey.count == SealedBox.overheadByteCount + Domain.epochKey.bytes.count + 32 + 8 + 16 + 32 else {
            throw .invalidField("sealed key has the wrong length")
        }
        self.init(
            version: m.version, account: try AccountID(validating: m.accountID, field: "account_id"), epoch: m.epoch,
            sender: try DeviceID(validating: m.sender, field: "sender"),
            recipient: try DeviceID(validating: m.recipient, field: "recipient"), sealedKey: Array(m.sealedKey),
            signature: Array(m.signature))
    }

    init(
        version: UInt32, account: AccountID, epoch: UInt64, sender: DeviceID, recipient: DeviceID, sealedKey: [UInt8],
        signature: [UInt8]
    ) {
        self.version = version
        self.account = account
        self.epoch = epoch
        self.sender = sender
        self.recipient = recipient
        self.sealedKey = sealedKey
        self.signature = signature
    }
}

/// Why a key envelope was refused.
public enum KeyEnvelopeError: Error, Equatable, Sendable {
    /// Addressed to another device.
    case wrongRecipient
    /// The sender's signature does not verify (or the key does not match the sender id).
    case badSignature
    /// The sealed box does not open with this device's key.
    case cannotOpen
    /// The sealed plaintext names another account, epoch or recipient (a swapped wrap; ADV-40).
    case bindingMismatch
}
