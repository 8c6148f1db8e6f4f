public import CloakProtocol

/// Why a store operation failed. Messages name the operation, never stored bytes; its
/// ``description`` is a sentence for a person (a log line, the command line).
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The database could not be opened or reached (retry later).
    case unavailable(String)
    /// A statement or transaction failed.
    case operationFailed(String)
    /// Stored data does not parse or verify (corruption, or a foreign database).
    case corrupt(String)
    /// A schema migration failed.
    case migrationFailed(String)
    /// The database location is not `sqlite:PATH`, `postgres://…` or `memory:`, or names a
    /// database that does not exist (the payload is the whole sentence).
    case invalidLocation(String)

    /// A sentence naming what failed and what to do.
    public var description: String {
        switch self {
        case .unavailable(let why):
            "The database cannot be reached or opened (\(why)); check the database setting, that the database runs, "
                + "and that this user may use it."
        case .operationFailed(let why):
            "A database operation failed (\(why)); the request was refused and nothing acknowledged was lost."
        case .corrupt(let why):
            "The database holds data that does not read back (\(why)); restore it from a backup (docs/operations.md)."
        case .migrationFailed(let why):
            "The database schema could not be created or upgraded (\(why)); check that this user may change the schema."
        case .invalidLocation(let sentence):
            sentence
        }
    }
}

/// Durable storage of the sync server: accounts and their device logs, change sets with
/// their cursors, key envelopes, snapshots, recovery blobs, pairing mailboxes and cursor
/// acknowledgements. It stores ciphertext and public metadata only.
///
/// ```swift
/// let store = try SQLiteServerStore(path: "cloak-data/cloak.sqlite", logger: logger)
/// try await store.migrate()
/// try await store.commit(batch)                      // one durable transaction
/// let page = try await store.changeSets(query)        // catch-up
/// ```
///
/// Implementations: ``InMemoryServerStore`` (tests and the deterministic simulator),
/// ``SQLiteServerStore`` (the default) and ``PostgresServerStore``; all pass the same
/// conformance suite (`ServerStoreConformance` in CloakServerTests). The sync core decides
/// what to write and only ever hands a store whole ``WriteBatch``es, so a store needs no
/// protocol knowledge beyond the batch rules.
public protocol ServerStore: Sendable {
    /// Creates or upgrades the schema (idempotent).
    func migrate() async throws(StoreError)
    /// Succeeds when the database answers (readiness).
    func ping() async throws(StoreError)
    /// Applies a batch in one durable transaction (fsync'd before returning). Returns the
    /// accounts of ``WriteBatch/accountVersions`` whose stored version was not the expected
    /// one: none of their rows were written.
    @discardableResult
    func commit(_ batch: WriteBatch) async throws(StoreError) -> Set<AccountID>
    /// The account's state, or nil when it does not exist.
    func account(_ account: AccountID) async throws(StoreError) -> AccountRecord?
    /// Device-log entries from `fromIndex`, or nil when the account does not exist.
    func deviceLog(_ account: AccountID, fromIndex: UInt64) async throws(StoreError) -> [[UInt8]]?
    /// A page of change sets in cursor order (compacted ones are skipped).
    func changeSets(_ query: ChangeSetQuery) async throws(StoreError) -> [StoredChangeSet]
    /// One chain's change sets with `seq` in `seqs`, in cursor order, within `maxBytes`.
    func changeSets(account: AccountID, chain: ChainKey, seqs: ClosedRange<UInt64>, maxBytes: Int)
        async throws(StoreError) -> [StoredChangeSet]
    /// Cursor, hash and bytes of stored change sets at the given positions (compacted ones with
    /// nil bytes).
    func changeSetRefs(account: AccountID, _ positions: [ChainSeq]) async throws(StoreError) -> [ChainSeq:
        StoredChangeSetRef]
    /// The account's committed head and the hash stored at `cursor` (a Subscribe's anchor).
    func cursorAnchor(account: AccountID, cursor: UInt64) async throws(StoreError) -> CursorAnchor
    /// Chains' newest positions in (conversation, author) byte order, strictly after `after`
    /// (nil: from the first), at most `limit`.
    func chainHeads(account: AccountID, after: ChainKey?, limit: Int) async throws(StoreError) -> [StoredChainHead]
    /// Serialised key envelopes for `recipient` with epoch ≥ `fromEpoch`, by epoch.
    func keyEnvelopes(account: AccountID, recipient: DeviceID, fromEpoch: UInt64) async throws(StoreError) -> [[UInt8]]
    /// The newest snapshot of each listed conversation (all when empty), by conversation id.
    func newestSnapshots(account: AccountID, conversations: [ConversationID]) async throws(StoreError) -> [[UInt8]]
    /// A recovery blob.
    func recovery(_ lookup: RecoveryLookup) async throws(StoreError) -> RecoveryRecord?
    /// Removes and returns a mailbox's payload if it exists and has not expired (single use).
    func takeMailbox(_ id: [UInt8], nowMs: UInt64) async throws(StoreError) -> [UInt8]?
    /// Accounts in id order after `after`, at most `limit` (compaction walks them).
    func accounts(after: AccountID?, limit: Int) async throws(StoreError) -> [AccountID]
    /// Device log, acknowledgements and newest snapshots of an account.
    func compactionInput(_ account: AccountID) async throws(StoreError) -> CompactionInput
    /// Drops the bytes of `chain`'s change sets with seq ≤ `throughSeq` and cursor strictly below
    /// `belowCursor`, keeping cursor and hash (so duplicates and chain checks still answer).
    /// Returns the number of change sets dropped and their bytes, which leave the account's quota.
    func dropCovered(account: AccountID, chain: ChainKey, throughSeq: UInt64, belowCursor: UInt64)
        async throws(StoreError) -> (count: Int, bytes: Int64)
    /// Deletes expired mailboxes; returns how many.
    func purgeMailboxes(nowMs: UInt64) async throws(StoreError) -> Int

    // MARK: Administration (`cloak-server accounts`, metrics)

    /// Accounts in id order after `after`, at most `limit`, with their sizes.
    func accountSummaries(after: AccountID?, limit: Int) async throws(StoreError) -> [AccountSummary]
    /// One account's summary, or nil when it does not exist.
    func accountSummary(_ account: AccountID) async throws(StoreError) -> AccountSummary?
    /// Blocks or unblocks an account; false when it does not exist.
    func setBlocked(_ account: AccountID, blocked: Bool) async throws(StoreError) -> Bool
    /// Deletes every row of the account in every table, in one transaction (the right to
    /// erasure); what it deleted, by table. An account with no rows gives an empty report.
    func eraseAccount(_ account: AccountID) async throws(StoreError) -> ErasureReport
    /// Of `accounts`, those that exist, each with whether it is blocked (a running server
    /// closes the connections of blocked and erased accounts).
    func accessStates(_ accounts: [AccountID]) async throws(StoreError) -> [AccountID: Bool]
    /// Totals over every account, and the database's size.
    func usage() async throws(StoreError) -> StoreUsage
    /// Releases connections and files.
    func close() async
}

/// A store several server processes share that announces each process's commits to the
/// others (``PostgresServerStore``: LISTEN/NOTIFY).
public protocol CommitNotifier: Sendable {
    /// Delivers the accounts other processes commit writes for, with each one's new version,
    /// until the task is cancelled or the connection is lost (then it throws; call again).
    /// `onListening` runs once listening is in force: announcements made before it were not heard.
    func listenForCommits(onListening: @Sendable () -> Void, onCommit: @Sendable (AccountID, UInt64) -> Void)
        async throws(StoreError)
}

/// A read the sync core asks its driver to perform (sans-IO: the core never awaits).
public enum StoreRead: Sendable, Equatable {
    /// ``ServerStore/account(_:)``.
    case account(AccountID)
    /// ``ServerStore/deviceLog(_:fromIndex:)``.
    case deviceLog(AccountID, fromIndex: UInt64)
    /// ``ServerStore/changeSets(_:)``.
    case changeSets(ChangeSetQuery)
    /// ``ServerStore/changeSets(account:chain:seqs:maxBytes:)``.
    case chainRange(AccountID, ChainKey, ClosedRange<UInt64>, maxBytes: Int)
    /// ``ServerStore/changeSetRefs(account:_:)``.
    case changeSetRefs(AccountID, [ChainSeq])
    /// ``ServerStore/cursorAnchor(account:cursor:)``.
    case cursorAnchor(AccountID, cursor: UInt64)
    /// ``ServerStore/chainHeads(account:after:limit:)``.
    case chainHeads(AccountID, after: ChainKey?, limit: Int)
    /// ``ServerStore/keyEnvelopes(account:recipient:fromEpoch:)``.
    case keyEnvelopes(AccountID, recipient: DeviceID, fromEpoch: UInt64)
    /// ``ServerStore/newestSnapshots(account:conversations:)``.
    case snapshots(AccountID, [ConversationID])
    /// ``ServerStore/recovery(_:)``.
    case recovery(RecoveryLookup)
    /// ``ServerStore/takeMailbox(_:nowMs:)``.
    case takeMailbox([UInt8], nowMs: UInt64)
}

/// The answer to a ``StoreRead``, fed back into the core.
public enum StoreReadResult: Sendable, Equatable {
    /// Answer to ``StoreRead/account(_:)``.
    case account(AccountRecord?)
    /// Answer to ``StoreRead/deviceLog(_:fromIndex:)``.
    case deviceLog([[UInt8]]?)
    /// Answer to ``StoreRead/changeSets(_:)`` and ``StoreRead/chainRange(_:_:_:maxBytes:)``.
    case changeSets([StoredChangeSet])
    /// Answer to ``StoreRead/changeSetRefs(_:_:)``.
    case changeSetRefs([ChainSeq: StoredChangeSetRef])
    /// Answer to ``StoreRead/cursorAnchor(_:cursor:)``.
    case cursorAnchor(CursorAnchor)
    /// Answer to ``StoreRead/chainHeads(_:after:limit:)``.
    case chainHeads([StoredChainHead])
    /// Answer to ``StoreRead/keyEnvelopes(_:recipient:fromEpoch:)`` and ``StoreRead/snapshots(_:_:)``.
    case records([[UInt8]])
    /// Answer to ``StoreRead/recovery(_:)``.
    case recovery(RecoveryRecord?)
    /// Answer to ``StoreRead/takeMailbox(_:nowMs:)``.
    case mailbox([UInt8]?)
}

extension ServerStore {
    /// Performs a core-requested read.
    public func perform(_ read: StoreRead) async throws(StoreError) -> StoreReadResult {
        switch read {
        case .account(let id):
            return .account(try await account(id))
        case .deviceLog(let id, let from):
            return .deviceLog(try await deviceLog(id, fromIndex: from))
        case .changeSets(let query):
            return .changeSets(try await changeSets(query))
        case .chainRange(let id, let chain, let seqs, let maxBytes):
            return .changeSets(try await changeSets(account: id, chain: chain, seqs: seqs, maxBytes: maxBytes))
        case .changeSetRefs(let id, let positions):
            return .changeSetRefs(try await changeSetRefs(account: id, positions))
        case .cursorAnchor(let id, let cursor):
            return .cursorAnchor(try await cursorAnchor(account: id, cursor: cursor))
        case .chainHeads(let id, let after, let limit):
            return .chainHeads(try await chainHeads(account: id, after: after, limit: limit))
        case .keyEnvelopes(let id, let recipient, let from):
            return .records(try await keyEnvelopes(account: id, recipient: recipient, fromEpoch: from))
        case .snapshots(let id, let conversations):
            return .records(try await newestSnapshots(account: id, conversations: conversations))
        case .recovery(let lookup):
            return .recovery(try await recovery(lookup))
        case .takeMailbox(let id, let now):
            return .mailbox(try await takeMailbox(id, nowMs: now))
        }
    }
}

extension ServerStore {
    /// ``ping()`` that gives up after `limit`: a PostgreSQL pool that cannot connect keeps
    /// retrying, and readiness checks and start-up must answer rather than wait for it.
    public func ping(within limit: Duration) async throws(StoreError) {
        let answered: Bool
        do {
            answered = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await self.ping()
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: limit)
                    return false
                }
                let first = try await group.next() ?? false
                group.cancelAll()
                return first
            }
        } catch let error as StoreError {
            throw error
        } catch {
            answered = false
        }
        guard answered else { throw .unavailable("no answer within \(limit.components.seconds) s") }
    }
}
