public import CloakCRDT
public import CloakProtocol

/// One conversation as a list row.
public struct ConversationSummary: Sendable, Hashable, Identifiable {
    /// Its id.
    public let id: ConversationID
    /// Title, if set.
    public let title: String?
    /// Pinned flag.
    public let pinned: Bool
    /// Archived flag (the conversation's own metadata register).
    public let archived: Bool
    /// Library state (active, archived, trashed).
    public let state: ConversationState
    /// Messages in the whole tree.
    public let messageCount: Int
}

/// A conversation as the app renders it: metadata and the active branch.
public struct ConversationView: Sendable, Hashable {
    /// Its id.
    public let id: ConversationID
    /// Title, pinned, archived, model, folder, custom values.
    public let metadata: ConversationMetadata
    /// The active branch, root first.
    public let messages: [RenderedMessage]
    /// Read markers by device.
    public let readMarkers: [ReplicaID: HLCTimestamp]
    /// Equal on every device that has the same state (convergence checks, the demo).
    public let stateHash: [UInt8]
    /// The AI assistants that can read this conversation now (granted with it in their scope,
    /// not revoked, not past their expiry), as the verified device log says (PROTOCOL.md §29).
    public let assistants: [AssistantInfo]
}

extension ClientCore {
    func summaries() -> [ConversationSummary] {
        let library = documents.library
        return library.conversations.map { entry in
            let id = ConversationID(libraryKey: entry.key)
            let document = documents.conversations[id]
            let metadata = document?.metadata ?? ConversationMetadata()
            return ConversationSummary(
                id: id, title: metadata.title, pinned: metadata.pinned, archived: metadata.archived, state: entry.state,
                messageCount: document?.messageCount ?? 0)
        }.sorted { ($0.pinned ? 0 : 1, $0.id) < ($1.pinned ? 0 : 1, $1.id) }
    }

    func view(of id: ConversationID) -> ConversationView? {
        guard let document = documents.conversations[id] else { return nil }
        return ConversationView(
            id: id, metadata: document.metadata, messages: document.activeBranch(), readMarkers: document.readMarkers,
            stateHash: document.stateHash.bytes, assistants: assistantsReading(id))
    }
}
