/// The account library as a CRDT: which conversations exist and in which lifecycle state,
/// the folders, and account-wide settings. Same style as `ConversationDocument`.
///
/// ```swift
/// var library = AccountLibraryDocument()
/// let add = try library.addConversation(key, replica: &me, physicalMillis: now)
/// let folder = try library.createFolder(name: "Work", replica: &me, physicalMillis: now)
/// let trash = try library.setState(.trashed, of: key, replica: &me, physicalMillis: now)
/// let bytes = OperationBatch.encode([add, folder] + trash)
/// _ = otherLibrary.apply(try OperationBatch.decode(bytes), physicalMillis: now)
/// for entry in otherLibrary.conversations where entry.state == .active { list(entry.key) }
/// ```
///
/// Existence is an add-wins set (Shapiro et al.'s OR-Set): a purge removes only the adds it
/// saw, and restoring from the trash re-adds, so a restore concurrent with a purge wins.
/// Lifecycle states (active, archived, trashed), folder names and settings are
/// last-writer-wins registers under the HLC. Folder membership is each conversation's
/// `.folder` metadata register (in its `ConversationDocument`).
public struct AccountLibraryDocument: Sendable {
    var conversationTags = AddWinsSet<ConversationKey>()
    var conversationStates: [ConversationKey: LWWRegister<ConversationState>] = [:]
    var folderTags = AddWinsSet<FolderID>()
    var folderNames: [FolderID: LWWRegister<String>] = [:]
    var settingRegisters: [String: LWWRegister<MetadataValue>] = [:]
    var delivery: DeliveryState

    /// An empty library.
    public init(limits: DeliveryLimits = DeliveryLimits()) {
        delivery = DeliveryState(limits: limits)
    }

    /// Conversations in the library (purged ones excluded), ordered by key.
    public var conversations: [LibraryConversation] {
        conversationTags.elements.sorted().map { key in
            LibraryConversation(key: key, state: conversationStates[key]?.value ?? .active)
        }
    }

    /// A conversation's state, or nil when it is not in the library.
    public func state(of key: ConversationKey) -> ConversationState? {
        conversationTags.contains(key) ? conversationStates[key]?.value ?? .active : nil
    }

    /// Folders (deleted ones excluded), ordered by id.
    public var folders: [LibraryFolder] {
        folderTags.elements.sorted().map { LibraryFolder(id: $0, name: folderNames[$0]?.value ?? "") }
    }

    /// Settings that are set.
    public var settings: [String: MetadataValue] {
        settingRegisters.compactMapValues { $0.value == .unset ? nil : $0.value }
    }

    /// Operations held in the pending buffer.
    public var pendingCount: Int { delivery.pending.count }
}

/// A conversation's entry in the library.
///
/// ```swift
/// let visible = library.conversations.filter { $0.state == .active }
/// ```
public struct LibraryConversation: Hashable, Sendable {
    /// The conversation.
    public var key: ConversationKey
    /// Its lifecycle state.
    public var state: ConversationState
}

/// A folder of the library.
///
/// ```swift
/// let names = library.folders.map(\.name)
/// ```
public struct LibraryFolder: Hashable, Sendable {
    /// The folder id (the id of the operation that created it).
    public var id: FolderID
    /// Its current name.
    public var name: String
}

extension AccountLibraryDocument: CausalDocument {
    /// Merges library operations from any device, in any order, idempotently; id reuse,
    /// holding, deferral and overflow work exactly as in `ConversationDocument.apply`.
    public mutating func apply(
        _ ops: [CRDTOperation], physicalMillis: UInt64, ownReplica: ReplicaID? = nil
    ) -> ApplyReport {
        deliver(ops, physicalMillis: physicalMillis, ownReplica: ownReplica)
    }

    func readiness(of op: CRDTOperation, physicalMillis: UInt64) -> Readiness {
        let future = HybridLogicalClock.isTooFarAhead(
            op.timestamp, physicalMillis: physicalMillis, maxSkewMillis: delivery.limits.maxSkewMillis)
        switch op.payload {
        case .addConversation:
            return .ready
        case .removeConversation(_, let observed):
            for id in observed where !delivery.isApplied(id) { return .missing(id) }
            return .ready
        case .removeFolder(let folder, let observed):
            for id in [folder] + observed where !delivery.isApplied(id) { return .missing(id) }
            return .ready
        case .setConversationState, .createFolder, .renameFolder, .setSetting:
            return future ? .tooFarAhead : .ready
        case .createMessage, .insertText, .deleteText, .deleteMessage, .selectBranch, .setMetadata, .addReaction,
            .removeReaction, .markRead:
            return .invalid(.wrongDocumentKind)
        }
    }

    mutating func execute(_ op: consuming CRDTOperation) -> RejectionReason? {
        switch op.payload {
        case .addConversation(let key):
            conversationTags.add(key, tag: op.id)
        case .removeConversation(let key, let observed):
            conversationTags.remove(key, observed: observed)
        case .setConversationState(let key, let state):
            conversationStates.writeRegister(key, state, timestamp: op.timestamp, writer: op.id)
        case .createFolder(let name):
            folderTags.add(op.id, tag: op.id)
            folderNames.writeRegister(op.id, name, timestamp: op.timestamp, writer: op.id)
        case .renameFolder(let folder, let name):
            folderNames.writeRegister(folder, name, timestamp: op.timestamp, writer: op.id)
        case .removeFolder(let folder, let observed):
            folderTags.remove(folder, observed: observed)
        case .setSetting(let key, let value):
            settingRegisters.writeRegister(key, value, timestamp: op.timestamp, writer: op.id)
        default:
            return .wrongDocumentKind
        }
        return nil
    }

    func unappliedPieces(of op: CRDTOperation, gaps: [(start: UInt64, count: UInt64)]) -> [CRDTOperation]? { nil }

    /// A repeated library operation contradicts the library when it is not the `createFolder`
    /// that made a folder with its id, or when the register it writes names it as the winner
    /// with another value or time (CONVERSATIONS.md §6.2).
    func contradicts(_ op: CRDTOperation) -> Bool {
        if case .createFolder(let name) = op.payload {
            return folderNames[op.id].map { $0.isWon(by: op, with: name) == false } ?? false
        }
        if folderTags.contains(op.id) || folderNames[op.id]?.writer == op.id { return true }
        switch op.payload {
        case .setConversationState(let key, let state):
            return conversationStates[key].map { $0.isWon(by: op, with: state) == false } ?? false
        case .renameFolder(let folder, let name):
            return folderNames[folder].map { $0.isWon(by: op, with: name) == false } ?? false
        case .setSetting(let key, let value):
            return settingRegisters[key].map { $0.isWon(by: op, with: value) == false } ?? false
        default:
            return false
        }
    }
}
