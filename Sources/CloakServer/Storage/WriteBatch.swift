public import CloakProtocol

/// Everything one group commit writes, in one transaction: the rows of every request that
/// arrived while the previous commit was running (docs/design.md "Stores": group commit).
///
/// ```swift
/// var batch = WriteBatch()
/// batch.changeSets.append(.init(account: a, cursor: 7, chain: key, seq: 3, hash: h, bytes: wire))
/// try await store.commit(batch)
/// ```
///
/// Every store applies a batch with the same rules, so batches never fail on a constraint:
/// account and device-log inserts are idempotent, key envelopes keep the first copy, a
/// snapshot replaces the conversation's previous one, a cursor acknowledgement only moves
/// forward, and change sets advance their chain and the account's head cursor and byte count.
public struct WriteBatch: Sendable, Equatable {
    /// A new change set.
    public struct ChangeSetRow: Sendable, Equatable {
        /// The account.
        public var account: AccountID
        /// Its cursor (assigned by the registry, strictly increasing per account).
        public var cursor: UInt64
        /// The chain it extends.
        public var chain: ChainKey
        /// Its sequence number.
        public var seq: UInt64
        /// Its hash.
        public var hash: ChangeSetHash
        /// The pushed bytes.
        public var bytes: [UInt8]

        /// Creates a row.
        public init(account: AccountID, cursor: UInt64, chain: ChainKey, seq: UInt64, hash: ChangeSetHash, bytes: [UInt8]) {
            self.account = account
            self.cursor = cursor
            self.chain = chain
            self.seq = seq
            self.hash = hash
            self.bytes = bytes
        }
    }

    /// A better copy of a stored change set: same hash and cursor, other bytes (a pushed copy
    /// whose signature verifies replacing a stored one whose signature does not; PROTOCOL.md
    /// §19). Applied after the batch's new change sets, only where the stored row still has
    /// that hash and its bytes were not compacted; the account's byte count moves by the size
    /// difference.
    public struct ReplacementRow: Sendable, Equatable {
        /// The account.
        public var account: AccountID
        /// The stored change set's cursor.
        public var cursor: UInt64
        /// Its hash (unchanged).
        public var hash: ChangeSetHash
        /// The bytes that replace the stored ones.
        public var bytes: [UInt8]

        /// Creates a row.
        public init(account: AccountID, cursor: UInt64, hash: ChangeSetHash, bytes: [UInt8]) {
            self.account = account
            self.cursor = cursor
            self.hash = hash
            self.bytes = bytes
        }
    }

    /// A device-log entry (index 0 creates the account).
    public struct LogEntryRow: Sendable, Equatable {
        /// The account.
        public var account: AccountID
        /// Its index.
        public var index: UInt64
        /// The serialised entry.
        public var bytes: [UInt8]

        /// Creates a row.
        public init(account: AccountID, index: UInt64, bytes: [UInt8]) {
            self.account = account
            self.index = index
            self.bytes = bytes
        }
    }

    /// A key envelope.
    public struct EnvelopeRow: Sendable, Equatable {
        /// The account.
        public var account: AccountID
        /// Who can open it.
        public var recipient: DeviceID
        /// Its epoch.
        public var epoch: UInt64
        /// The serialised `KeyEnvelope`.
        public var bytes: [UInt8]
        /// For a conversation key sealed to an assistant (PROTOCOL.md §29), its conversation:
        /// stored per (account, recipient, epoch, conversation), first write wins, like epoch keys
        /// per (account, recipient, epoch).
        public var conversation: ConversationID?

        /// Creates a row.
        public init(
            account: AccountID, recipient: DeviceID, epoch: UInt64, bytes: [UInt8], conversation: ConversationID? = nil
        ) {
            self.account = account
            self.recipient = recipient
            self.epoch = epoch
            self.bytes = bytes
            self.conversation = conversation
        }
    }

    /// A snapshot (replaces the conversation's previous one).
    public struct SnapshotRow: Sendable, Equatable {
        /// The account.
        public var account: AccountID
        /// The conversation.
        public var conversation: ConversationID
        /// Its hash (the next snapshot's `prev_snapshot_hash`).
        public var hash: SnapshotHash
        /// The serialised `Snapshot`.
        public var bytes: [UInt8]

        /// Creates a row.
        public init(account: AccountID, conversation: ConversationID, hash: SnapshotHash, bytes: [UInt8]) {
            self.account = account
            self.conversation = conversation
            self.hash = hash
            self.bytes = bytes
        }
    }

    /// A pairing-mailbox slot (replaces an existing one with the same id).
    public struct MailboxRow: Sendable, Equatable {
        /// The 16-byte id.
        public var id: [UInt8]
        /// The opaque payload.
        public var payload: [UInt8]
        /// Wall-clock expiry, ms since the Unix epoch.
        public var expiresAtMs: UInt64

        /// Creates a row.
        public init(id: [UInt8], payload: [UInt8], expiresAtMs: UInt64) {
            self.id = id
            self.payload = payload
            self.expiresAtMs = expiresAtMs
        }
    }

    /// A device's applied cursor (only ever moves forward).
    public struct CursorAckRow: Sendable, Equatable {
        /// The account.
        public var account: AccountID
        /// The device.
        public var device: DeviceID
        /// The cursor.
        public var cursor: UInt64

        /// Creates a row.
        public init(account: AccountID, device: DeviceID, cursor: UInt64) {
            self.account = account
            self.device = device
            self.cursor = cursor
        }
    }

    /// An account's recovery-guess counters (applied after ``recoveries``; no row when the
    /// account has no recovery blob).
    public struct RecoveryCounterRow: Sendable, Equatable {
        /// The account.
        public var account: AccountID
        /// Counted evaluations since the last success or reset.
        public var failures: UInt32
        /// When the newest happened, ms since the Unix epoch.
        public var lastAttemptMs: UInt64
        /// Guesses before the newest successful recovery, and when (``RecoveryRecord/noticeFailures``).
        public var noticeFailures: UInt32
        /// When that recovery succeeded.
        public var noticeAtMs: UInt64

        /// Creates a row.
        public init(account: AccountID, failures: UInt32, lastAttemptMs: UInt64, noticeFailures: UInt32 = 0, noticeAtMs: UInt64 = 0) {
            self.account = account
            self.failures = failures
            self.lastAttemptMs = lastAttemptMs
            self.noticeFailures = noticeFailures
            self.noticeAtMs = noticeAtMs
        }
    }

    /// What an account's stored version must be for the batch's rows of that account to be
    /// written, and what it becomes.
    public struct VersionCheck: Sendable, Equatable {
        /// The version the writer last saw (its rows build on that state).
        public var expected: UInt64
        /// The version after this batch.
        public var next: UInt64

        /// Creates a check.
        public init(expected: UInt64, next: UInt64) {
            self.expected = expected
            self.next = next
        }
    }

    /// Optimistic concurrency between server processes sharing a store: for each listed
    /// account whose stored version is not `expected`, none of the batch's rows of that
    /// account are written (another process changed it; the writer reloads and its clients
    /// retry) and the commit reports it. Listed accounts that match move to `next`. A single
    /// server process leaves this empty.
    public var accountVersions: [AccountID: VersionCheck] = [:]
    /// Device-log entries, in index order per account.
    public var logEntries: [LogEntryRow] = []
    /// Change sets, in cursor order per account.
    public var changeSets: [ChangeSetRow] = []
    /// Replacements of stored change sets' bytes (after ``changeSets``).
    public var replacements: [ReplacementRow] = []
    /// Key envelopes.
    public var envelopes: [EnvelopeRow] = []
    /// Snapshots.
    public var snapshots: [SnapshotRow] = []
    /// Mailbox slots.
    public var mailboxes: [MailboxRow] = []
    /// Recovery blobs (each replaces the account's previous one, its counters at 0).
    public var recoveries: [RecoveryRecord] = []
    /// Recovery-guess counters (after ``recoveries``).
    public var recoveryCounters: [RecoveryCounterRow] = []
    /// Cursor acknowledgements.
    public var cursorAcks: [CursorAckRow] = []
    /// Wall-clock time of the commit, ms since the Unix epoch (0: unknown). Stores keep it as
    /// each account's last write (log entries, change sets, envelopes, snapshots, recovery
    /// blobs; not acknowledgements) for `cloak-server accounts`.
    public var committedAtMs: UInt64 = 0

    /// The accounts whose data this batch writes (what ``committedAtMs`` stamps).
    public var writtenAccounts: Set<AccountID> {
        var accounts = Set(logEntries.map(\.account))
        accounts.formUnion(changeSets.map(\.account))
        accounts.formUnion(envelopes.map(\.account))
        accounts.formUnion(snapshots.map(\.account))
        accounts.formUnion(recoveries.map(\.account))
        return accounts
    }

    /// An empty batch.
    public init() {}

    /// True when there is nothing to write.
    public var isEmpty: Bool {
        logEntries.isEmpty && changeSets.isEmpty && replacements.isEmpty && envelopes.isEmpty && snapshots.isEmpty && mailboxes.isEmpty
            && recoveries.isEmpty && recoveryCounters.isEmpty && cursorAcks.isEmpty
    }

    /// The batch without the rows of `accounts` that depend on the account's version (what a
    /// store writes when their version checks fail): their mailbox slots and cursor
    /// acknowledgements stay.
    public func removing(_ accounts: Set<AccountID>) -> WriteBatch {
        guard !accounts.isEmpty else { return self }
        var kept = self
        kept.accountVersions = accountVersions.filter { !accounts.contains($0.key) }
        kept.logEntries.removeAll { accounts.contains($0.account) }
        kept.changeSets.removeAll { accounts.contains($0.account) }
        kept.replacements.removeAll { accounts.contains($0.account) }
        kept.envelopes.removeAll { accounts.contains($0.account) }
        kept.snapshots.removeAll { accounts.contains($0.account) }
        kept.recoveries.removeAll { accounts.contains($0.account) }
        kept.recoveryCounters.removeAll { accounts.contains($0.account) }
        // Mailbox slots and cursor acknowledgements do not depend on the account's version.
        return kept
    }

    /// Rows in the batch (for metrics).
    public var rowCount: Int {
        logEntries.count + changeSets.count + replacements.count + envelopes.count + snapshots.count + mailboxes.count + recoveries.count
            + recoveryCounters.count + cursorAcks.count
    }
}
