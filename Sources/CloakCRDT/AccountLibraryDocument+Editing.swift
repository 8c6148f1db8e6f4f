/// Why a local library edit was refused (nothing was changed).
///
/// ```swift
/// do { _ = try library.purgeConversation(key, replica: &me, physicalMillis: now) }
/// catch .notInLibrary { /* already gone */ } catch {}
/// ```
public enum LibraryEditError: Error, Hashable, Sendable {
    /// The conversation or folder is not in the library.
    case notInLibrary
    /// The replica's 48-bit counter space is exhausted.
    case counterExhausted
}

extension AccountLibraryDocument {
    /// Adds a conversation (a new tag: also undoes a concurrent purge).
    public mutating func addConversation(
        _ key: ConversationKey, replica: inout Replica, physicalMillis: UInt64
    )
        throws(LibraryEditError) -> CRDTOperation
    {
        try commit(.addConversation(key), replica: &replica, physicalMillis)
    }

    /// Sets a conversation's lifecycle state. Restoring to `.active` also re-adds the
    /// conversation, so a restore wins over a purge made concurrently on another device.
    public mutating func setState(
        _ state: ConversationState, of key: ConversationKey, replica: inout Replica, physicalMillis: UInt64
    ) throws(LibraryEditError) -> [CRDTOperation] {
        var ops = [try commit(.setConversationState(key, state), replica: &replica, physicalMillis)]
        if state == .active {
            ops.append(try commit(.addConversation(key), replica: &replica, physicalMillis))
        }
        return ops
    }

    /// Removes a conversation from the library for good (the adds this device has seen).
    public mutating func purgeConversation(
        _ key: ConversationKey, replica: inout Replica, physicalMillis: UInt64
    )
        throws(LibraryEditError) -> CRDTOperation
    {
        let observed = conversationTags.liveTags(of: key)
        guard !observed.isEmpty else { throw .notInLibrary }
        return try commit(.removeConversation(key, observed: observed), replica: &replica, physicalMillis)
    }

    /// Creates a folder; the returned operation's id is the folder id.
    public mutating func createFolder(
        name: String, replica: inout Replica, physicalMillis: UInt64
    )
        throws(LibraryEditError) -> CRDTOperation
    {
        try commit(.createFolder(name: name), replica: &replica, physicalMillis)
    }

    /// Renames a folder.
    public mutating func renameFolder(
        _ folder: FolderID, to name: String, replica: inout Replica, physicalMillis: UInt64
    )
        throws(LibraryEditError) -> CRDTOperation
    {
        guard folderTags.contains(folder) else { throw .notInLibrary }
        return try commit(.renameFolder(folder, name: name), replica: &replica, physicalMillis)
    }

    /// Deletes a folder (conversations keep their `.folder` register; the app shows them
    /// outside any folder once the folder is gone).
    public mutating func deleteFolder(
        _ folder: FolderID, replica: inout Replica, physicalMillis: UInt64
    )
        throws(LibraryEditError) -> CRDTOperation
    {
        let observed = folderTags.liveTags(of: folder)
        guard !observed.isEmpty else { throw .notInLibrary }
        return try commit(.removeFolder(folder, observed: observed), replica: &replica, physicalMillis)
    }

    /// Writes one setting (`.unset` clears it).
    public mutating func setSetting(
        _ key: String, to value: MetadataValue, replica: inout Replica, physicalMillis: UInt64
    )
        throws(LibraryEditError) -> CRDTOperation
    {
        try commit(.setSetting(key: key, value: value), replica: &replica, physicalMillis)
    }

    private mutating func commit(
        _ payload: OperationPayload, replica: inout Replica, _ physicalMillis: UInt64
    )
        throws(LibraryEditError) -> CRDTOperation
    {
        guard let counter = replica.reserve(1, floor: delivery.counterFloor(for: replica.id)) else {
            throw .counterExhausted
        }
        let timestamp = replica.clock.tick(physicalMillis: physicalMillis)
        let op = CRDTOperation(
            id: OperationID(replica: replica.id, counter: counter), timestamp: timestamp, payload: payload)
        _ = execute(op)
        delivery.markApplied(op)
        if !delivery.pending.isEmpty {
            var released: [CRDTOperation] = []
            delivery.pending.releaseWaiters(replica: op.id.replica, start: op.id.counter, length: 1, into: &released)
            if !released.isEmpty { _ = deliver(released, physicalMillis: physicalMillis) }
        }
        return op
    }
}
