public import CloakProtocol
public import Foundation

// AI assistants as scoped, revocable members of the conversations they serve (PROTOCOL.md §29).
extension CloakClient {
    // MARK: A device

    /// Grants the assistant whose invitation text `cloak-agent init` printed access to
    /// `conversations` until `expires`: it receives those conversations' keys (and nothing
    /// else), may read them and write its own `assistant` and `tool` messages there. Granting an
    /// assistant again adds conversations to its scope and sets its new expiry.
    @discardableResult
    public func grantAssistant(_ invitation: String, conversations: [ConversationID], expires: Date)
        async throws(ClientError) -> AssistantInfo
    {
        let parsed: AssistantInvitation
        do { parsed = try AssistantInvitation(text: invitation) } catch { throw .assistantInvitation(error) }
        return try await grantAssistant(parsed, conversations: conversations, expires: expires)
    }

    /// ``grantAssistant(_:conversations:expires:)`` with a parsed invitation.
    @discardableResult
    public func grantAssistant(_ invitation: AssistantInvitation, conversations: [ConversationID], expires: Date)
        async throws(ClientError) -> AssistantInfo
    {
        let millis = UInt64(max(0, expires.timeIntervalSince1970 * 1000))
        _ = try await run { () throws(ClientError) in
            engine.grantAssistant(invitation, conversations: conversations, expiresAtMillis: millis)
        }
        guard let info = try engine.assistants().first(where: { $0.id == invitation.id }) else {
            throw .unknownAssistant(invitation.id)
        }
        return info
    }

    /// Every assistant the account ever granted, newest first (revoked ones too).
    public func assistants() throws(ClientError) -> [AssistantInfo] {
        try engine.assistants()
    }

    /// Ends an assistant's access at once: a signed entry every device verifies, and a new key
    /// epoch for its conversations, so it reads nothing written afterwards.
    public func revokeAssistant(_ id: DeviceID) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.revokeAssistant(id) }
    }

    /// Removes conversations from an assistant's scope (their keys rotate; it keeps the rest).
    public func restrictAssistant(_ id: DeviceID, removing conversations: [ConversationID]) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.restrictAssistant(id, removing: conversations) }
    }

    // MARK: The assistant's own client

    /// This client's public keys as the invitation a person grants (`cloak-agent init`).
    public func assistantInvitation() -> AssistantInvitation {
        engine.assistantInvitation()
    }

    /// Joins, as an assistant, the account whose device log grants this client's keys: fetches
    /// and verifies the log, signs in, and opens the conversation keys sealed to it. Throws
    /// ``ClientError/assistantNotGranted`` until a device has granted it.
    public func joinAsAssistant(account: AccountID) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.joinAsAssistant(account: account) }
    }

    /// Whether this client is an assistant of its account.
    public var isAssistant: Bool { engine.isAssistant }

    /// This assistant's grant (scope and expiry) as the verified device log states it.
    public var assistantGrant: AssistantInfo? { engine.assistantGrant }

    /// The conversations this client holds (an assistant: those of its scope it has received).
    public func knownConversations() -> [ConversationID] {
        engine.knownConversations()
    }

    /// The set of conversations that changed, every time some did, until the client closes
    /// (an assistant watches its whole scope with it).
    public func changes() -> AsyncStream<Set<ConversationID>> {
        let (stream, continuation) = AsyncStream<Set<ConversationID>>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let id = nextObserverID
        nextObserverID += 1
        changeObservers[id] = continuation
        continuation.onTermination = { _ in Task { await self.removeChangeObserver(id) } }
        return stream
    }

    func removeChangeObserver(_ id: Int) { changeObservers[id] = nil }
}
