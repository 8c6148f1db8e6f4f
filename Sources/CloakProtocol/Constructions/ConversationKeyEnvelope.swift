@_spi(Randomness) public import CloakCrypto
import Foundation

/// One conversation's key of one epoch, sealed to an AI assistant and signed by the device that
/// sealed it (PROTOCOL.md §29 "Envelopes"). It is how an assistant reads exactly its scope: it
/// never receives an epoch key, so it can derive no other conversation's key.
///
///     sealed = crypto_box_seal("cloak.v1.conversation-key\0" ‖ account ‖ LE64 epoch
///                              ‖ conversation ‖ recipient ‖ conversation key, recipient X25519 key)
///     signed = "cloak.v1.conversation-key-envelope\0" ‖ LE32 version ‖ account ‖ LE64 epoch
///              ‖ conversation ‖ sender ‖ recipient ‖ LE64(|sealed|) ‖ sealed
///
/// Like an epoch-key envelope, the binding inside the box stops a server from moving it to
/// another recipient, conversation, epoch or account (ADV-40), and the signature from making
/// one (ADV-10). On the wire it is a `KeyEnvelope` whose `conversation_id` is set.
///
/// ```swift
/// let envelope = try ConversationKeyEnvelope.seal(key, conversation: c, epoch: 3, account: a,
///     recipient: assistantID, recipientKey: assistantX25519, sender: me, signer: myKey, random: rng)
/// let key = try envelope.open(with: assistantSecret, recipient: assistantID, senderKey: deviceKey)
/// ```
public struct ConversationKeyEnvelope: Sendable, Hashable {
    /// Construction version (1).
    public let version: UInt32
    /// The account.
    public let account: AccountID
    /// The epoch whose conversation key this carries.
    public let epoch: UInt64
    /// The conversation.
    public let conversation: ConversationID
    /// The sealing device.
    public let sender: DeviceID
    /// The assistant that can open it.
    public let recipient: DeviceID
    /// The sealed box.
    public let sealedKey: [UInt8]
    /// The sender's signature.
    public let signature: [UInt8]

    /// Bytes of the sealed box: 48 of `crypto_box_seal`, the 26-byte domain, account, epoch,
    /// conversation, recipient and key.
    public static let sealedByteCount = SealedBox.overheadByteCount + 26 + 32 + 8 + 16 + 16 + 32

    /// The exact signed bytes.
    public var signedMessage: [UInt8] {
        var w = CanonicalWriter(domain: .conversationKeyEnvelope, reserving: 320)
        w.u32(version)
        w.fixed(account)
        w.u64(epoch)
        w.fixed(conversation)
        w.fixed(sender)
        w.fixed(recipient)
        w.lengthPrefixed(sealedKey)
        return w.bytes
    }

    package static func innerPlaintext(
        account: AccountID, epoch: UInt64, conversation: ConversationID, recipient: DeviceID, key: [UInt8]
    ) -> [UInt8] {
        var w = CanonicalWriter(domain: .conversationKey, reserving: 140)
        w.fixed(account)
        w.u64(epoch)
        w.fixed(conversation)
        w.fixed(recipient)
        w.raw(key)
        return w.bytes
    }

    /// Seals and signs a conversation key for one assistant.
    @_spi(Randomness)
    public static func seal(
        _ key: SymmetricKey, conversation: ConversationID, epoch: UInt64, account: AccountID, recipient: DeviceID,
        recipientKey: X25519PublicKey, sender: DeviceID, signer: Ed25519PrivateKey, random: any RandomSource
    ) throws(CryptoError) -> ConversationKeyEnvelope {
        var inner = innerPlaintext(
            account: account, epoch: epoch, conversation: conversation, recipient: recipient, key: key.secret.copyBytes())
        defer { SecretBytes.wipe(&inner) }
        let sealed = try SealedBox.seal(inner, to: recipientKey, using: random)
        let unsigned = ConversationKeyEnvelope(
            version: ProtocolVersion.current, account: account, epoch: epoch, conversation: conversation, sender: sender,
            recipient: recipient, sealedKey: sealed, signature: [])
        return ConversationKeyEnvelope(
            version: unsigned.version, account: account, epoch: epoch, conversation: conversation, sender: sender,
            recipient: recipient, sealedKey: sealed, signature: signer.signature(for: unsigned.signedMessage))
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
        let expectedPrefix = Self.innerPlaintext(
            account: account, epoch: epoch, conversation: conversation, recipient: me, key: [])
        let prefixLength = expectedPrefix.count
        guard inner.count == prefixLength + 32 else { throw .bindingMismatch }
        let bound = inner.withUnsafeBytes { Array($0.prefix(prefixLength)) }
        guard ConstantTime.equals(bound, expectedPrefix) else { throw .bindingMismatch }
        let key = SecretBytes(count: 32) { out in
            inner.withUnsafeBytes { raw in
                for i in 0..<32 { out[i] = raw[prefixLength + i] }
            }
        }
        do { return try SymmetricKey(key) } catch { throw .bindingMismatch }
    }

    /// The protobuf message: a `KeyEnvelope` with `conversation_id` set.
    public var message: Cloak_V1_KeyEnvelope {
        var m = Cloak_V1_KeyEnvelope()
        m.version = version
        m.accountID = Data(account.bytes)
        m.epoch = epoch
        m.sender = Data(sender.bytes)
        m.recipient = Data(recipient.bytes)
        m.sealedKey = Data(sealedKey)
        m.signature = Data(signature)
        m.conversationID = Data(conversation.bytes)
        return m
    }

    /// Shape-checks a received envelope (it must name a conversation).
    public init(message m: Cloak_V1_KeyEnvelope) throws(ProtocolError) {
        guard ProtocolVersion.supported.contains(m.version) else { throw .unsupportedVersion(m.version) }
        guard m.signature.count == 64 else { throw .invalidField("envelope signature must be 64 bytes") }
        guard m.sealedKey.count == Self.sealedByteCount else { throw .invalidField("sealed key has the wrong length") }
        let conversation = try ConversationID(validating: m.conversationID, field: "conversation_id")
        guard conversation != .library else { throw .invalidField("the library's key is never sealed to an assistant") }
        self.init(
            version: m.version, account: try AccountID(validating: m.accountID, field: "account_id"), epoch: m.epoch,
            conversation: conversation, sender: try DeviceID(validating: m.sender, field: "sender"),
            recipient: try DeviceID(validating: m.recipient, field: "recipient"), sealedKey: Array(m.sealedKey),
            signature: Array(m.signature))
    }

    init(
        version: UInt32, account: AccountID, epoch: UInt64, conversation: ConversationID, sender: DeviceID,
        recipient: DeviceID, sealedKey: [UInt8], signature: [UInt8]
    ) {
        self.version = version
        self.account = account
        self.epoch = epoch
        self.conversation = conversation
        self.sender = sender
        self.recipient = recipient
        self.sealedKey = sealedKey
        self.signature = signature
    }
}
