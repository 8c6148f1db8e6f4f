public import CloakCRDT
public import CloakProtocol

/// The materialised CRDT documents of one account: one ``ConversationDocument`` per
/// conversation and the account library (conversation id all zeros).
struct DocumentSet: Sendable {
    var conversations: [ConversationID: ConversationDocument] = [:]
    var library = AccountLibraryDocument()

    /// Applies decoded operations to the document of `conversation`. `ownReplica` (this
    /// device's) when re-applying its own operations from storage, which may be grouped
    /// differently than when they were first applied (CONVERSATIONS.md §6).
    mutating func apply(
        _ ops: [CRDTOperation], to conversation: ConversationID, physicalMillis: UInt64, ownReplica: ReplicaID? = nil
    ) -> ApplyReport {
        if conversation == .library { return library.apply(ops, physicalMillis: physicalMillis, ownReplica: ownReplica) }
        return conversations[conversation, default: ConversationDocument()]
            .apply(ops, physicalMillis: physicalMillis, ownReplica: ownReplica)
    }

    /// The snapshot encoding of a document.
    func snapshot(of conversation: ConversationID) -> [UInt8]? {
        if conversation == .library { return library.snapshot() }
        return conversations[conversation]?.snapshot()
    }

    /// Replaces a document from its snapshot encoding.
    mutating func load(snapshot bytes: [UInt8], for conversation: ConversationID) throws(CRDTDecodingError) {
        if conversation == .library {
            library = try AccountLibraryDocument(snapshot: bytes)
        } else {
            conversations[conversation] = try ConversationDocument(snapshot: bytes)
        }
    }

    /// The convergence hash of a document.
    func stateHash(of conversation: ConversationID) -> [UInt8]? {
        if conversation == .library { return library.stateHash.bytes }
        return conversations[conversation]?.stateHash.bytes
    }
}

extension ConversationID {
    /// The CRDT library's key for this conversation.
    var libraryKey: ConversationKey {
        guard let key = ConversationKey(bytes: bytes) else { preconditionFailure("both ids are 16 bytes") }
        return key
    }

    init(libraryKey: ConversationKey) {
        self.init(unchecked: libraryKey.bytes)
    }
}

extension DeviceID {
    /// The CRDT replica id of this device (the same 16 bytes): the author of its messages
    /// (``RenderedMessage/author``).
    public var replicaID: ReplicaID {
        ReplicaID(high: bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, low: bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
    }
}
