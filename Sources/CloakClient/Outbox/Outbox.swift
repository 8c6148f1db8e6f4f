import CloakCRDT
import CloakProtocol

/// What this device wrote and the server has not acknowledged: local operations not yet
/// sealed (streaming batches, or edits waiting for the current epoch's key), and sealed change
/// sets waiting for the server. It owns the `pending_ops` and `outbox` tables and the replica
/// state (operation ids and clock), which must never go back: a repeated operation id would
/// let two different operations claim one identity.
struct Outbox {
    /// One conversation's unsealed operations, with their stored rows and when the batch began.
    struct Batch {
        var ops: [CRDTOperation] = []
        var rows: [Int64] = []
        var since: UInt64
    }

    /// This device's CRDT replica (operation counter and hybrid logical clock).
    var replica: Replica
    /// Unsealed local operations per conversation.
    var pending: [ConversationID: Batch] = [:]
    /// Own change sets the server refused with STALE_DEVICE_LOG, to re-seal once the newest
    /// epoch key is here. Only these are re-sealed: one the server stored before the removal
    /// (its ack lost) is acknowledged as a duplicate instead, and re-sealing it would fork.
    /// Kept in memory: after a restart a resend is simply refused again.
    var staleRefused: Set<ChangeSetHash> = []
    /// Own change sets sent in a push whose answer this device never processed (the store's
    /// mark, loaded at start): the server may have stored and fanned them out, so none is ever
    /// re-sealed (§19). Marked before the push leaves, so a crash cannot lose the mark.
    var unanswered: Set<ChangeSetHash> = []

    static func pendingContext(_ conversation: ConversationID) -> [UInt8] { Array("pending".utf8) + conversation.bytes }

    /// The replica state from the store, or a fresh one.
    static func loadReplica(_ tx: any StoreTransaction, me: DeviceID) throws -> Replica {
        guard let bytes = try tx.meta(.replica) else { return Replica(id: me.replicaID) }
        // A corrupt replica would restart operation counters at 0 and reuse ids: refuse.
        do { return try Replica(decoding: bytes) } catch { throw ClientError.storage("stored replica state is corrupt") }
    }

    /// Stores unsealed operations (sealed by the local cipher) and the replica that issued them.
    mutating func persistPending(
        _ ops: [CRDTOperation], conversation: ConversationID, now: UInt64, cipher: LocalCipher, _ tx: any StoreTransaction
    ) throws -> Int64 {
        let sealed = cipher.seal(OperationBatch.encode(ops), context: Self.pendingContext(conversation))
        let row = try tx.insertPendingOperations(conversation: conversation, sealed: sealed)
        try tx.setMeta(.replica, replica.encoded())
        return row
    }

    /// Adds stored operations to a conversation's batch in memory.
    mutating func appendPending(_ ops: [CRDTOperation], row: Int64, conversation: ConversationID, now: UInt64) {
        // In place: a copy of the batch taken out of the dictionary copied every earlier
        // token's operations again for each streamed token.
        pending[conversation, default: Batch(since: now)].ops += ops
        pending[conversation, default: Batch(since: now)].rows.append(row)
    }

    /// Stores a sealed change set as the newest of this device's chain, in the outbox, and
    /// deletes the pending rows it seals.
    func persistSealed(_ changeSet: ChangeSet, pendingRows: [Int64], _ tx: any StoreTransaction) throws {
        let row = try tx.insertChangeSet(changeSet, local: true)
        try tx.addToOutbox(row)
        for pending in pendingRows { try tx.deletePendingOperations(id: pending) }
        try tx.setMeta(.replica, replica.encoded())
    }

    /// The oldest unacknowledged change sets, in the order they were sealed.
    static func unacknowledged(limit: Int, _ tx: any StoreTransaction) throws -> [ChangeSet] {
        try tx.outbox(limit: limit).compactMap { try? ChangeSet(wire: $0) }
    }
}
