@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol

// PROTOCOL.md §29: a grant that widens an assistant's scope. What the assistant has fetched of
// its scope's history is durable (derived from the verified log and one stored index), so a
// restart in the middle of a widening still ends with the history; and a snapshot served
// before its conversation's key waits, stored, for the key.
extension ClientCore {
    /// Conversations of this assistant's current scope whose history it has not fetched, each
    /// with the log index at which its current stretch in the scope began: granted (again) after
    /// the log head this assistant had verified when its last full catch-up from cursor 0 began.
    func unfetchedScope() throws(ClientError) -> [ConversationID: UInt64] {
        guard isAssistant, let assistant = log?.assistants[me], assistant.endedAt == nil else { return [:] }
        let through = try store.read { tx in try tx.meta(.scopeHistoryThrough) }.flatMap(UInt64.init(littleEndianBytes:)) ?? 0
        var unfetched: [ConversationID: UInt64] = [:]
        for conversation in assistant.current.scope {
            guard let entered = Self.enteredScope(conversation, assistant), entered > through else { continue }
            unfetched[conversation] = entered
        }
        return unfetched
    }

    /// The index of the entry that began `conversation`'s current stretch in the scope.
    static func enteredScope(_ conversation: ConversationID, _ assistant: AssistantMember) -> UInt64? {
        var entered: UInt64?
        for terms in assistant.terms.reversed() {
            guard terms.covers(conversation) else { break }
            entered = terms.from
        }
        return entered
    }

    /// A catch-up from cursor 0 that began with the log verified through `index` is complete:
    /// the history of every conversation in the scope then is here (or waits for its key).
    func recordScopeHistory(through index: UInt64) throws(ClientError) {
        try store.write { tx in try tx.setMeta(.scopeHistoryThrough, index.littleEndianBytes) }
    }

    /// Keeps a snapshot of this assistant's scope served before its conversation's key: one per
    /// conversation (the one covering most), at most a scope's worth.
    func awaitKey(for snapshot: Snapshot, _ tx: any StoreTransaction) throws {
        var waiting = try awaitingSnapshots(tx)
        let conversation = snapshot.header.conversation
        if let held = waiting.first(where: { $0.header.conversation == conversation }),
            Documents.coveredTotal(held.header) >= Documents.coveredTotal(snapshot.header)
        {
            return
        }
        waiting.removeAll { $0.header.conversation == conversation }
        guard waiting.count < DeviceLogEntry.maxScope else { return }
        waiting.append(snapshot)
        try storeAwaiting(waiting, tx)
    }

    /// Loads the waiting snapshots whose conversation key is here now (``awaitKey(for:_:)``).
    func loadAwaitingSnapshots(_ tx: any StoreTransaction, _ output: inout CoreOutput) throws {
        let waiting = try awaitingSnapshots(tx)
        guard !waiting.isEmpty, let log = membership.log else { return }
        var still: [Snapshot] = []
        for snapshot in waiting {
            let header = snapshot.header
            guard inCurrentScope(header.conversation) else { continue }
            guard membership.conversationKey(header.conversation, epoch: header.epoch) != nil else {
                still.append(snapshot)
                continue
            }
            try loadSnapshot(snapshot, log: log, tx, &output)
        }
        try storeAwaiting(still, tx)
        try documents.save(cipher: cipher, tx)
    }

    private func awaitingSnapshots(_ tx: any StoreTransaction) throws -> [Snapshot] {
        guard let bytes = try tx.meta(.awaitingSnapshots) else { return [] }
        // Written by this device; one that does not parse is dropped (the widening's next
        // fetch serves the snapshot again), never a reason to stop syncing.
        guard let list = try? FrameCodec.parse(Cloak_V1_SnapshotList.self, from: bytes, what: "awaiting snapshots") else {
            return []
        }
        return list.snapshots.compactMap { try? Snapshot(message: $0) }
    }

    private func storeAwaiting(_ snapshots: [Snapshot], _ tx: any StoreTransaction) throws {
        guard !snapshots.isEmpty else { return try tx.deleteMeta(.awaitingSnapshots) }
        var list = Cloak_V1_SnapshotList()
        list.snapshots = snapshots.map(\.message)
        try tx.setMeta(.awaitingSnapshots, FrameCodec.serialize(list))
    }
}
