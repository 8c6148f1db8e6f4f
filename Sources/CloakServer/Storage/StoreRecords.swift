public import CloakProtocol

/// One author's chain in one conversation: the unit of `seq`/`prev_hash` continuity.
public struct ChainKey: Hashable, Sendable {
    /// The conversation.
    public var conversation: ConversationID
    /// The author device.
    public var author: DeviceID

    /// Creates a key.
    public init(conversation: ConversationID, author: DeviceID) {
        self.conversation = conversation
        self.author = author
    }
}

/// The newest stored position of a chain. Kept even after compaction drops the change sets,
/// so chain checks keep working (PROTOCOL.md §"Compaction").
public struct ChainPosition: Hashable, Sendable {
    /// The last accepted sequence number.
    public var seq: UInt64
    /// Its change-set hash.
    public var hash: ChangeSetHash

    /// Creates a position.
    public init(seq: UInt64, hash: ChangeSetHash) {
        self.seq = seq
        self.hash = hash
    }
}

/// One sequence number of one chain.
public struct ChainSeq: Hashable, Sendable {
    /// The chain.
    public var chain: ChainKey
    /// The sequence number.
    public var seq: UInt64

    /// Creates a key.
    public init(chain: ChainKey, seq: UInt64) {
        self.chain = chain
        self.seq = seq
    }
}

/// Where a stored change set sits and what it holds: enough to answer a duplicate push, and
/// to tell whether a pushed copy with the same hash carries other signature bytes
/// (PROTOCOL.md §19 "a damaged stored copy").
public struct StoredChangeSetRef: Hashable, Sendable {
    /// Its server cursor.
    public var cursor: UInt64
    /// Its hash.
    public var hash: ChangeSetHash
    /// The stored bytes; nil once compaction dropped them.
    public var bytes: [UInt8]?

    /// Creates a reference.
    public init(cursor: UInt64, hash: ChangeSetHash, bytes: [UInt8]?) {
        self.cursor = cursor
        self.hash = hash
        self.bytes = bytes
    }
}

/// What a Subscribe's anchor is checked against (PROTOCOL.md §20): the account's committed head
/// and the hash of the change set stored at the subscriber's cursor.
public struct CursorAnchor: Hashable, Sendable {
    /// The highest committed cursor (0 for an unknown account).
    public var headCursor: UInt64
    /// The hash stored at the asked cursor (kept after compaction drops the bytes); nil when no
    /// change set holds that cursor.
    public var hash: ChangeSetHash?

    /// Creates an anchor record.
    public init(headCursor: UInt64, hash: ChangeSetHash?) {
        self.headCursor = headCursor
        self.hash = hash
    }
}

/// One chain's newest stored position (a `FetchHeads` answer).
public struct StoredChainHead: Hashable, Sendable {
    /// The chain.
    public var chain: ChainKey
    /// Its newest stored seq and hash.
    public var position: ChainPosition

    /// Creates a head.
    public init(chain: ChainKey, position: ChainPosition) {
        self.chain = chain
        self.position = position
    }
}

extension ChainKey: Comparable {
    /// By conversation id, then author, both byte-wise: the order of `FetchHeads` (and of the
    /// stores' `(conversation, author)` indexes).
    public static func < (lhs: ChainKey, rhs: ChainKey) -> Bool {
        lhs.conversation != rhs.conversation ? lhs.conversation < rhs.conversation : lhs.author < rhs.author
    }
}

/// A change set as stored: its cursor and the exact bytes that were pushed.
public struct StoredChangeSet: Hashable, Sendable {
    /// Server-assigned, strictly increasing per account.
    public var cursor: UInt64
    /// The serialised `ChangeSet`, unchanged.
    public var bytes: [UInt8]

    /// Creates a record.
    public init(cursor: UInt64, bytes: [UInt8]) {
        self.cursor = cursor
        self.bytes = bytes
    }
}

/// What the server keeps in memory about an account, as loaded from the store.
public struct AccountRecord: Sendable, Equatable {
    /// The account.
    public var account: AccountID
    /// Serialised device-log entries in index order.
    public var deviceLog: [[UInt8]]
    /// The highest committed cursor (0 when nothing was pushed yet).
    public var headCursor: UInt64
    /// Bytes counted against the account's quota.
    public var storedBytes: Int64
    /// Every chain's newest position.
    public var chains: [ChainKey: ChainPosition]
    /// The hash of each conversation's newest snapshot.
    public var newestSnapshots: [ConversationID: SnapshotHash]
    /// The size of each conversation's newest snapshot (a replacement frees it).
    public var snapshotBytes: [ConversationID: Int64]
    /// Moves with every commit that carried a version check for the account
    /// (``WriteBatch/accountVersions``): server processes sharing one store tell from it
    /// whether the account changed since they read it.
    public var version: UInt64
    /// The operator blocked the account (`cloak-server accounts block`): its devices may not
    /// authenticate.
    public var blocked: Bool
    /// The account's recovery blob and its guess counters, if one is stored.
    public var recovery: RecoveryRecord?

    /// Creates a record.
    public init(
        account: AccountID, deviceLog: [[UInt8]], headCursor: UInt64, storedBytes: Int64,
        chains: [ChainKey: ChainPosition], newestSnapshots: [ConversationID: SnapshotHash],
        snapshotBytes: [ConversationID: Int64] = [:], version: UInt64 = 0, blocked: Bool = false,
        recovery: RecoveryRecord? = nil
    ) {
        self.account = account
        self.deviceLog = deviceLog
        self.headCursor = headCursor
        self.storedBytes = storedBytes
        self.chains = chains
        self.newestSnapshots = newestSnapshots
        self.snapshotBytes = snapshotBytes
        self.version = version
        self.blocked = blocked
        self.recovery = recovery
    }
}

/// A stored recovery blob and the account it belongs to.
public struct RecoveryRecord: Sendable, Equatable {
    /// The account.
    public var account: AccountID
    /// The recovery key's id.
    public var recoveryKeyID: DeviceID
    /// The serialised `RecoveryBlob`.
    public var bytes: [UInt8]
    /// Passphrase-recovery evaluations since the last success or reset: each a guess until the
    /// recovery key authenticates (PROTOCOL.md §22). A new blob starts at 0.
    public var failures: UInt32
    /// When the newest of them (or the reset) happened, ms since the Unix epoch.
    public var lastAttemptMs: UInt64
    /// The guesses counted before the newest successful recovery that followed any (0: none),
    /// and when it succeeded: the durable notice every device is told at authentication until a
    /// newer one supersedes it, so a device offline meanwhile still learns of them (§22). A
    /// new blob keeps it.
    public var noticeFailures: UInt32
    /// When that recovery succeeded, ms since the Unix epoch.
    public var noticeAtMs: UInt64

    /// Creates a record.
    public init(
        account: AccountID, recoveryKeyID: DeviceID, bytes: [UInt8], failures: UInt32 = 0, lastAttemptMs: UInt64 = 0,
        noticeFailures: UInt32 = 0, noticeAtMs: UInt64 = 0
    ) {
        self.account = account
        self.recoveryKeyID = recoveryKeyID
        self.bytes = bytes
        self.failures = failures
        self.lastAttemptMs = lastAttemptMs
        self.noticeFailures = noticeFailures
        self.noticeAtMs = noticeAtMs
    }
}

/// How an unauthenticated device names the recovery blob it wants.
public enum RecoveryLookup: Sendable, Hashable {
    /// Passphrase recovery: the user knows the account id.
    case account(AccountID)
    /// Recovery words: they determine the recovery key and so its id.
    case recoveryKey(DeviceID)
}

/// Change sets of one account after a cursor, in cursor order.
public struct ChangeSetQuery: Sendable, Hashable {
    /// The account.
    public var account: AccountID
    /// Only cursors greater than this.
    public var afterCursor: UInt64
    /// Only cursors up to this (inclusive): the committed head the reader was promised.
    public var throughCursor: UInt64
    /// Only these conversations; empty means all.
    public var conversations: Set<ConversationID>
    /// At most this many rows.
    public var limit: Int
    /// Stop before the bytes of the returned rows exceed this (at least one row is returned).
    public var maxBytes: Int

    /// Creates a query.
    public init(
        account: AccountID, afterCursor: UInt64, throughCursor: UInt64, conversations: Set<ConversationID> = [],
        limit: Int, maxBytes: Int
    ) {
        self.account = account
        self.afterCursor = afterCursor
        self.throughCursor = throughCursor
        self.conversations = conversations
        self.limit = limit
        self.maxBytes = maxBytes
    }
}

/// What compaction needs to know about one account.
public struct CompactionInput: Sendable, Equatable {
    /// Serialised device-log entries (to find the active devices).
    public var deviceLog: [[UInt8]]
    /// The cursor each device last acknowledged.
    public var acknowledged: [DeviceID: UInt64]
    /// The newest snapshot of each conversation, serialised.
    public var newestSnapshots: [[UInt8]]

    /// Creates an input.
    public init(deviceLog: [[UInt8]], acknowledged: [DeviceID: UInt64], newestSnapshots: [[UInt8]]) {
        self.deviceLog = deviceLog
        self.acknowledged = acknowledged
        self.newestSnapshots = newestSnapshots
    }
}
