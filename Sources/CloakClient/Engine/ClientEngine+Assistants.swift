import CloakCrypto
public import CloakProtocol

// AI assistants (PROTOCOL.md §29). A device grants, narrows and revokes them; an assistant's own
// client joins the account that granted it and writes only its own messages.
extension ClientEngine {
    /// Grants the assistant of `invitation` access to `conversations` until `expiresAtMillis`
    /// (or, for an assistant already granted, adds them to its scope and sets its expiry).
    public func grantAssistant(_ invitation: AssistantInvitation, conversations: [ConversationID], expiresAtMillis: UInt64)
        -> FlowID
    {
        startFlow(GrantAssistantFlow(invitation: invitation, conversations: conversations, expiresAtMs: expiresAtMillis))
    }

    /// Ends an assistant's access: a new key epoch starts whose keys it never receives.
    public func revokeAssistant(_ id: DeviceID) -> FlowID {
        startFlow(RemoveDeviceFlow(assistant: id, removing: nil, reason: .revoked))
    }

    /// Removes conversations from an assistant's scope: a new key epoch starts, and the assistant
    /// receives only the keys of the conversations it keeps.
    public func restrictAssistant(_ id: DeviceID, removing conversations: [ConversationID]) -> FlowID {
        startFlow(RemoveDeviceFlow(assistant: id, removing: conversations, reason: .revoked))
    }

    /// Every assistant the account ever granted, newest first.
    public func assistants() throws(ClientError) -> [AssistantInfo] {
        _ = try core.requireAccount()
        return core.assistantInfos()
    }

    /// Joins, as an assistant, the account whose device log grants this client's keys.
    public func joinAsAssistant(account: AccountID) -> FlowID { startFlow(JoinAssistantFlow(account: account)) }

    /// This client's keys as an invitation a device can grant (`cloak-agent init`).
    public func assistantInvitation() -> AssistantInvitation {
        AssistantInvitation(signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey)
    }

    /// Whether this client is an assistant of its account.
    public var isAssistant: Bool { core.isAssistant }

    /// This assistant's own grant, as the verified device log states it.
    public var assistantGrant: AssistantInfo? { core.assistantInfos().first { $0.id == core.me } }

    /// The conversations this client holds state for (an assistant has no library: these are
    /// the conversations of its scope it has received).
    public func knownConversations() -> [ConversationID] {
        core.documents.conversations.keys.filter { $0 != .library }.sorted()
    }
}
