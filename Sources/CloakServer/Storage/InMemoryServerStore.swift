public import CloakProtocol
import Synchronization

/// A ``ServerStore`` held in memory: the store of unit tests and of the deterministic
/// simulator, which drives the sync core synchronously through the `…Now` methods. It
/// implements the same batch rules as the database stores and passes the same conformance
/// suite; a committed batch is applied atomically (to a copy that then replaces the state).
///
/// ```swift
/// let store = InMemoryServerStore()
/// try store.commitNow(batch)
/// let result = try store.performNow(.account(accountID))
/// ```
public final class InMemoryServerStore: ServerStore {
    struct Row {
        var cursor: UInt64
        var chain: ChainKey
        var seq: UInt64
        var hash: ChangeSetHash
        var bytes: [UInt8]?
    }

    struct EnvelopeKey: Hashable {
        var recipient: DeviceID
        var epoch: UInt64
        /// Set for a conversation key sealed to an assistant.
        var conversation: ConversationID?
    }

    struct AccountData {
        var log: [[UInt8]] = []
        var head: UInt64 = 0
        var storedBytes: Int64 = 0
        var chains: [ChainKey: ChainPosition] = [:]
        var rows: [Row] = []
        var rowBySeq: [ChainSeq: Int] = [:]
        var envelopes: [EnvelopeKey: [UInt8]] = [:]
        var snapshots: [ConversationID: (hash: SnapshotHash, bytes: [UInt8])] = [:]
        var recovery: RecoveryRecord?
        var acks: [DeviceID: UInt64] = [:]
        var version: UInt64 = 0
        var blocked = false
        var lastWriteMs: UInt64 = 0

        /// The index in ``rows`` (kept in cursor order) of the change set at `cursor`.
        func rowIndex(cursor: UInt64) -> Int? {
            var low = 0
            var high = rows.count
            while low < high {
                let mid = (low + high) / 2
                if rows[mid].cursor < cursor { low = mid + 1 } else { high = mid }
            }
            return low < rows.count && rows[low].cursor == cursor ? low : nil
        }
    }

    struct State {
        /// A simulated outage: pings, commits and the totals fail (``setOutage(_:)``).
        var outage = false
        var accounts: [AccountID: AccountData] = [:]
        var mailboxes: [[UInt8]: (payload: [UInt8], expiresAtMs: UInt64)] = [:]
        var recoveryKeys: [DeviceID: AccountID] = [:]
    }

    let state = Mutex(State())

    /// An empty store.
    public init() {}

    /// Nothing to migrate.
    public func migrate() async throws(StoreError) {}
    /// Always reachable.
    public func ping() async throws(StoreError) { try checkOutage() }

    /// Simulates the database going away (true) and coming back (false): pings, commits and the
    /// totals fail meanwhile, as they would against an unreachable PostgreSQL.
    public func setOutage(_ down: Bool) {
        state.withLock { $0.outage = down }
    }

    func checkOutage() throws(StoreError) {
        if state.withLock({ $0.outage }) { throw .unavailable("simulated outage") }
    }
    /// Nothing to release.
    public func close() async {}

    /// Applies a batch atomically; returns the accounts whose version check failed.
    @discardableResult
    public func commit(_ batch: WriteBatch) async throws(StoreError) -> Set<AccountID> {
        try checkOutage()
        return try commitNow(batch)
    }

    /// Synchronous ``commit(_:)`` for the simulator.
    @discardableResult
    public func commitNow(_ batch: WriteBatch) throws(StoreError) -> Set<AccountID> {
        try state.withLock { (current: inout State) throws(StoreError) in
            var next = current
            for entry in batch.logEntries where entry.index == 0 && next.accounts[entry.account] == nil {
                next.accounts[entry.account] = AccountData()
            }
            var conflicts = Set<AccountID>()
            for (account, check) in batch.accountVersions {
                if next.accounts[account]?.version == check.expected {
                    next.accounts[account]?.version = check.next
                } else {
                    conflicts.insert(account)
                }
            }
            let kept = batch.removing(conflicts)
            try Self.apply(kept, to: &next)
            if kept.committedAtMs > 0 {
                for account in kept.writtenAccounts {
                    let last = next.accounts[account]?.lastWriteMs ?? 0
                    next.accounts[account]?.lastWriteMs = max(last, kept.committedAtMs)
                }
            }
            current = next
            return conflicts
        }
    }

    /// A copy of everything committed so far, as a backup holds it: a server started on the
    /// copy is a server restored from that backup (ADV-44), while this store goes on.
    public func backup() -> InMemoryServerStore {
        let copy = InMemoryServerStore()
        let current = state.withLock { $0 }
        copy.state.withLock { $0 = current }
        return copy
    }

    /// Every stored byte string (log entries, change sets, envelopes, snapshots, recovery
    /// blobs, mailbox payloads): what the confidentiality check scans for plaintext.
    public func allStoredBytes() -> [[UInt8]] {
        state.withLock { s in
            var out: [[UInt8]] = s.mailboxes.values.map(\.payload)
            for data in s.accounts.values {
                out += data.log + data.rows.compactMap(\.bytes) + Array(data.envelopes.values) + data.snapshots.values.map(\.bytes)
                if let recovery = data.recovery { out.append(recovery.bytes) }
            }
            return out
        }
    }

    /// Synchronous ``ServerStore/perform(_:)`` for the simulator.
    public func performNow(_ read: StoreRead) throws(StoreError) -> StoreReadResult {
        switch read {
        case .account(let id): return .account(accountNow(id))
        case .deviceLog(let id, let from):
            return .deviceLog(state.withLock { $0.accounts[id].map { Array($0.log.dropFirst(Self.clampIndex(from))) } })
        case .changeSets(let query): return .changeSets(changeSetsNow(query))
        case .chainRange(let id, let chain, let seqs, let maxBytes):
            return .changeSets(chainRangeNow(id, chain, seqs, maxBytes: maxBytes))
        case .changeSetRefs(let id, let positions): return .changeSetRefs(refsNow(id, positions))
        case .cursorAnchor(let id, let cursor): return .cursorAnchor(anchorNow(id, cursor: cursor))
        case .chainHeads(let id, let after, let limit): return .chainHeads(headsNow(id, after: after, limit: limit))
        case .keyEnvelopes(let id, let recipient, let from):
            return .records(
                state.withLock { s in
                    (s.accounts[id]?.envelopes ?? [:]).filter { $0.key.recipient == recipient && $0.key.epoch >= from }
                        .sorted { a, b in
                            a.key.epoch != b.key.epoch
                                ? a.key.epoch < b.key.epoch
                                : (a.key.conversation ?? .library) < (b.key.conversation ?? .library)
                        }.map(\.value)
                })
        case .snapshots(let id, let conversations): return .records(snapshotsNow(id, conversations))
        case .recovery(let lookup): return .recovery(recoveryNow(lookup))
        case .takeMailbox(let id, let now):
            return .mailbox(
                state.withLock { s in
                    guard let slot = s.mailboxes.removeValue(forKey: id), slot.expiresAtMs > now else { return nil }
                    return slot.payload
                })
        }
    }

    /// The account's state, or nil when it does not exist.
    public func account(_ account: AccountID) async throws(StoreError) -> AccountRecord? { accountNow(account) }

    /// Device-log entries from `fromIndex`, or nil for an unknown account.
    public func deviceLog(_ account: AccountID, fromIndex: UInt64) async throws(StoreError) -> [[UInt8]]? {
        guard case .deviceLog(let log) = try performNow(.deviceLog(account, fromIndex: fromIndex)) else { return nil }
        return log
    }

    /// A page of stored change sets in cursor order.
    public func changeSets(_ query: ChangeSetQuery) async throws(StoreError) -> [StoredChangeSet] {
        changeSetsNow(query)
    }

    /// A page of stored change sets in cursor order.
    public func changeSets(account: AccountID, chain: ChainKey, seqs: ClosedRange<UInt64>, maxBytes: Int)
        async throws(StoreError) -> [StoredChangeSet]
    {
        chainRangeNow(account, chain, seqs, maxBytes: maxBytes)
    }

    /// Cursor and hash of stored change sets at the given positions.
    public func changeSetRefs(account: AccountID, _ positions: [ChainSeq]) async throws(StoreError) -> [ChainSeq:
        StoredChangeSetRef]
    {
        refsNow(account, positions)
    }

    /// The committed head and the hash stored at `cursor`.
    public func cursorAnchor(account: AccountID, cursor: UInt64) async throws(StoreError) -> CursorAnchor {
        anchorNow(account, cursor: cursor)
    }

    /// Chains' newest positions in (conversation, author) order after `after`.
    public func chainHeads(account: AccountID, after: ChainKey?, limit: Int) async throws(StoreError) -> [StoredChainHead] {
        headsNow(account, after: after, limit: limit)
    }

    /// Key envelopes for a recipient from an epoch on.
    public func keyEnvelopes(account: AccountID, recipient: DeviceID, fromEpoch: UInt64) async throws(StoreError)
        -> [[UInt8]]
    {
        guard case .records(let records) = try performNow(.keyEnvelopes(account, recipient: recipient, fromEpoch: fromEpoch))
        else { return [] }
        return records
    }

    /// The newest snapshot of each listed conversation (all when empty).
    public func newestSnapshots(account: AccountID, conversations: [ConversationID]) async throws(StoreError)
        -> [[UInt8]]
    {
        snapshotsNow(account, conversations)
    }

    /// A recovery blob, by account or recovery key.
    public func recovery(_ lookup: RecoveryLookup) async throws(StoreError) -> RecoveryRecord? { recoveryNow(lookup) }

    /// Removes and returns an unexpired mailbox payload.
    public func takeMailbox(_ id: [UInt8], nowMs: UInt64) async throws(StoreError) -> [UInt8]? {
        guard case .mailbox(let payload) = try performNow(.takeMailbox(id, nowMs: nowMs)) else { return nil }
        return payload
    }

    /// Account ids in order, for compaction.
    public func accounts(after: AccountID?, limit: Int) async throws(StoreError) -> [AccountID] {
        state.withLock { s in
            Array(s.accounts.keys.filter { id in after.map { $0 < id } ?? true }.sorted().prefix(limit))
        }
    }

    /// What compaction needs to know about an account.
    public func compactionInput(_ account: AccountID) async throws(StoreError) -> CompactionInput {
        state.withLock { s in
            guard let data = s.accounts[account] else { return CompactionInput(deviceLog: [], acknowledged: [:], newestSnapshots: []) }
            let snapshots = data.snapshots.sorted { $0.key < $1.key }.map(\.value.bytes)
            return CompactionInput(deviceLog: data.log, acknowledged: data.acks, newestSnapshots: snapshots)
        }
    }

    /// Drops the bytes of covered, acknowledged change sets of one chain.
    public func dropCovered(account: AccountID, chain: ChainKey, throughSeq: UInt64, belowCursor: UInt64)
        async throws(StoreError) -> (count: Int, bytes: Int64)
    {
        state.withLock { s in
            guard var data = s.accounts[account] else { return (0, 0) }
            var count = 0
            var bytes: Int64 = 0
            for index in data.rows.indices {
                let row = data.rows[index]
                guard row.chain == chain, row.seq <= throughSeq, row.cursor < belowCursor, let body = row.bytes else {
                    continue
                }
                data.rows[index].bytes = nil
                count += 1
                bytes += Int64(body.count)
            }
            data.storedBytes -= bytes
            s.accounts[account] = data
            return (count, bytes)
        }
    }

    /// Deletes expired mailboxes.
    public func purgeMailboxes(nowMs: UInt64) async throws(StoreError) -> Int {
        state.withLock { s in
            let before = s.mailboxes.count
            s.mailboxes = s.mailboxes.filter { $0.value.expiresAtMs > nowMs }
            return before - s.mailboxes.count
        }
    }

    static func clampIndex(_ index: UInt64) -> Int { Int(clamping: index) }

    // MARK: Batch rules

    static func apply(_ batch: WriteBatch, to s: inout State) throws(StoreError) {
        for entry in batch.logEntries {
            if entry.index == 0, s.accounts[entry.account] == nil { s.accounts[entry.account] = AccountData() }
            guard var data = s.accounts[entry.account] else { throw .operationFailed("log entry for unknown account") }
            if entry.index == UInt64(data.log.count) { data.log.append(entry.bytes) }
            s.accounts[entry.account] = data
        }
        for row in batch.changeSets {
            guard var data = s.accounts[row.account] else { throw .operationFailed("change set for unknown account") }
            let position = ChainSeq(chain: row.chain, seq: row.seq)
            guard data.rowBySeq[position] == nil, row.cursor > data.head else {
                throw .operationFailed("change set position or cursor already used")
            }
            data.rowBySeq[position] = data.rows.count
            data.rows.append(Row(cursor: row.cursor, chain: row.chain, seq: row.seq, hash: row.hash, bytes: row.bytes))
            if (data.chains[row.chain]?.seq ?? 0) < row.seq {
                data.chains[row.chain] = ChainPosition(seq: row.seq, hash: row.hash)
            }
            data.head = row.cursor
            data.storedBytes += Int64(row.bytes.count)
            s.accounts[row.account] = data
        }
        for row in batch.replacements {
            guard var data = s.accounts[row.account], let index = data.rowIndex(cursor: row.cursor),
                data.rows[index].hash == row.hash, let old = data.rows[index].bytes
            else { continue }
            data.rows[index].bytes = row.bytes
            data.storedBytes += Int64(row.bytes.count - old.count)
            s.accounts[row.account] = data
        }
        for row in batch.envelopes {
            guard var data = s.accounts[row.account] else { throw .operationFailed("envelope for unknown account") }
            let key = EnvelopeKey(recipient: row.recipient, epoch: row.epoch, conversation: row.conversation)
            if data.envelopes[key] == nil {
                data.envelopes[key] = row.bytes
                data.storedBytes += Int64(row.bytes.count)
            }
            s.accounts[row.account] = data
        }
        for row in batch.snapshots {
            guard var data = s.accounts[row.account] else { throw .operationFailed("snapshot for unknown account") }
            data.storedBytes -= Int64(data.snapshots[row.conversation]?.bytes.count ?? 0)
            data.snapshots[row.conversation] = (row.hash, row.bytes)
            data.storedBytes += Int64(row.bytes.count)
            s.accounts[row.account] = data
        }
        try applyRest(batch, to: &s)
    }

    private static func applyRest(_ batch: WriteBatch, to s: inout State) throws(StoreError) {
        for row in batch.mailboxes {
            s.mailboxes[row.id] = (row.payload, row.expiresAtMs)
        }
        for record in batch.recoveries {
            guard s.accounts[record.account] != nil else { throw .operationFailed("recovery for unknown account") }
            let old = s.accounts[record.account]?.recovery
            if let old { s.recoveryKeys[old.recoveryKeyID] = nil }
            var fresh = record
            (fresh.failures, fresh.lastAttemptMs) = (0, 0)
            (fresh.noticeFailures, fresh.noticeAtMs) = (old?.noticeFailures ?? 0, old?.noticeAtMs ?? 0)
            s.accounts[record.account]?.recovery = fresh
            s.recoveryKeys[record.recoveryKeyID] = record.account
        }
        for row in batch.recoveryCounters {
            s.accounts[row.account]?.recovery?.failures = row.failures
            s.accounts[row.account]?.recovery?.lastAttemptMs = row.lastAttemptMs
            s.accounts[row.account]?.recovery?.noticeFailures = row.noticeFailures
            s.accounts[row.account]?.recovery?.noticeAtMs = row.noticeAtMs
        }
        for ack in batch.cursorAcks {
            guard s.accounts[ack.account] != nil else { throw .operationFailed("ack for unknown account") }
            let old = s.accounts[ack.account]?.acks[ack.device] ?? 0
            s.accounts[ack.account]?.acks[ack.device] = max(old, ack.cursor)
        }
    }
}
