public import CloakCrypto
import Foundation

/// What `cloak-agent init` prints for a person to grant the assistant access (PROTOCOL.md §29):
/// the assistant's two public keys. Nothing in it is secret, and it travels out of band (the
/// person copies it from the operator's terminal or page to a device of theirs), so a server
/// cannot substitute keys. The text ends in a checksum, so a mistyped character is refused
/// rather than granting an unknown key (ADV-48):
///
///     text = "cloak-assistant1:" ‖ hex(payload ‖ BLAKE2b-256("cloak.v1.assistant-invitation\0" ‖ payload)[0..<4])
///
/// with `payload` the serialised `AssistantInvitation` message.
///
/// ```swift
/// let invitation = AssistantInvitation(signingKey: pk, agreementKey: xpk)
/// let again = try AssistantInvitation(text: invitation.text)
/// ```
public struct AssistantInvitation: Sendable, Hashable {
    /// The text prefix.
    public static let prefix = "cloak-assistant1:"

    /// The assistant's Ed25519 key (its id is the BLAKE2b-128 of it).
    public let signingKey: Ed25519PublicKey
    /// The assistant's X25519 key.
    public let agreementKey: X25519PublicKey

    /// An invitation for these keys.
    public init(signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey) {
        self.signingKey = signingKey
        self.agreementKey = agreementKey
    }

    /// The assistant's id.
    public var id: DeviceID { DeviceID(signingKey: signingKey) }

    /// The serialised `AssistantInvitation` message.
    public var payload: [UInt8] {
        var m = Cloak_V1_AssistantInvitation()
        m.version = ProtocolVersion.current
        m.signingKey = Data(signingKey.bytes)
        m.agreementKey = Data(agreementKey.bytes)
        return FrameCodec.serialize(m)
    }

    /// The text to copy.
    public var text: String {
        let payload = payload
        return Self.prefix + Hex.encode(payload + Self.checksum(payload))
    }

    /// Parses ``text`` (whitespace around it ignored); refuses anything else, naming why.
    public init(text: String) throws(AssistantInvitationError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix(Self.prefix), let bytes = try? Hex.decode(String(trimmed.dropFirst(Self.prefix.count))),
            bytes.count > 4, bytes.count < 256
        else { throw .malformed }
        let payload = Array(bytes.dropLast(4))
        guard ConstantTime.equals(Array(bytes.suffix(4)), Self.checksum(payload)) else { throw .checksumMismatch }
        guard let m = try? FrameCodec.parse(Cloak_V1_AssistantInvitation.self, from: payload, what: "assistant invitation"),
            m.version == ProtocolVersion.current,
            let signing = try? Ed25519PublicKey(bytes: Array(m.signingKey)),
            let agreement = try? X25519PublicKey(bytes: Array(m.agreementKey))
        else { throw .malformed }
        self.init(signingKey: signing, agreementKey: agreement)
    }

    static func checksum(_ payload: [UInt8]) -> [UInt8] {
        Array(BLAKE2b.hash(Domain.assistantInvitation.bytes + payload).prefix(4))
    }
}

/// Why an assistant invitation's text was refused.
public enum AssistantInvitationError: Error, Equatable, Sendable {
    /// Not a Cloak assistant invitation (it starts with `cloak-assistant1:`).
    case malformed
    /// The text was changed or mistyped: its checksum does not match.
    case checksumMismatch
}
