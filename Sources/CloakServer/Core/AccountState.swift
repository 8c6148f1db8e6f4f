public import CloakProtocol
import OrderedCollections

/// Who a connection authenticated as.
public struct Session: Sendable, Hashable {
    /// The account.
    public var account: AccountID
    /// The device, or the recovery key's id for a recovery session.
    public var device: DeviceID
    /// True when the device proved possession of the account's recovery key: such a session
    /// may only read the device log and key envelopes, add a device and store envelopes
    /// (PROTOCOL.md §"Recovery").
    public var isRecoveryKey: Bool
    /// True when the connection authenticated as an AI assistant the device log granted access
    /// to some conversations: it may only read and write those (PROTOCOL.md §29).
    public var isAssistant: Bool

    /// Creates a session.
    public init(account: AccountID, device: DeviceID, isRecoveryKey: Bool, isAssistant: Bool = false) {
        self.account = account
        self.device = device
        self.isRecoveryKey = isRecoveryKey
        self.isAssistant = isAssistant
    }
}

/// A change set staged for, or in, a group commit that has not finished yet.
struct StagedRef {
    var cursor: UInt64
    var hash: ChangeSetHash
    var batch: UInt64
    /// The staged bytes (shared with the batch's row, not copied): a pushed copy with the same
    /// hash and other bytes is judged against them.
    var bytes: [UInt8]
}

/// A subscriber's place in the catch-up → live hand-off.
struct Subscription {
    var conversations: Set<ConversationID>
    /// An assistant's subscription: `conversations` is its scope, and a stored change set whose
    /// conversation is unknown is not for it.
    var scoped = false
    /// False while the connection reads catch-up pages from the store; live fanout skips it.
    var live: Bool
    /// The subscriber has every cursor up to here (its Subscribe's `after_cursor`, then the
    /// end of its catch-up): fanout never sends it one of those again.
    var after: UInt64 = 0

    /// An unknown conversation (a stored change set that did not parse) goes to everyone:
    /// receivers verify what they get.
    func wants(_ conversation: ConversationID?) -> Bool {
        guard let conversation else { return !scoped }
        return (conversations.isEmpty && !scoped) || conversations.contains(conversation)
    }
}

/// What the registry keeps about one account while it is in use. The durable parts (log,
/// heads, chains, byte count, snapshot heads) include staged writes, so requests that arrive
/// while a commit runs build on them; if a commit fails they are reloaded from the store.
struct AccountState {
    var log: DeviceLog
    /// Highest cursor durably committed, as far as this process knows.
    var committedHead: UInt64
    /// Highest cursor sent to the live subscribers (what catch-up reads up to before it goes
    /// live). Equal to ``committedHead`` in a single process; with a shared store it trails
    /// while a fanout read of other processes' change sets runs.
    var deliveredHead: UInt64
    /// Highest cursor handed out, staged or committed.
    var assignedHead: UInt64
    var storedBytes: Int64
    var chains: [ChainKey: ChainPosition]
    var staged: [ChainSeq: StagedRef] = [:]
    var newestSnapshots: [ConversationID: SnapshotHash]
    var snapshotBytes: [ConversationID: Int64]
    /// Rows staged or in flight for this account (it stays cached until they commit).
    var pendingWrites = 0
    /// Set after a failed commit: the next request reloads the account from the store.
    var needsReload = false
    /// The store version the next batch builds on (``WriteBatch/accountVersions``).
    var version: UInt64
    /// The newest store version this copy is known to reflect (loaded, or moved by a local
    /// commit): a record read with an older one is stale and never installed.
    var storeVersion: UInt64
    /// A fanout read could not bring the device log up to date from its new entries (the cached
    /// head is not the stored one): nothing is sent until a read of the whole account.
    var fanoutNeedsAccount = false
    /// Another process committed while this one had writes in flight: reload once they finish.
    var remoteChanged = false
    /// Fanout reads (shared store): one runs at a time; `fanoutAgain` asks for another after it.
    var fanoutReading = false
    var fanoutAgain = false
    /// Which connection pushed the local change sets a fanout read will find (not echoed back).
    var localOrigins: [UInt64: ConnectionID] = [:]
    /// Identifies the fanout read in flight (a read of an evicted and reloaded account is stale).
    var fanoutReadID: UInt64 = 0
    /// The highest version other processes announced (a load that read less is already stale).
    var announcedVersion: UInt64 = 0
    /// When a request last forced a reload of this account (at most one per second).
    var forcedReloadAtMs: UInt64?
    var connections: Set<ConnectionID> = []
    /// In the order they first subscribed: a fanout writes to them in this one stable order
    /// (see ``SyncRegistry/fanOut(_:account:in:)``). A subscriber leaving shifts the rest: cheap
    /// at an account's connection limit (`maxConnectionsPerAccount`, 64 by default).
    var subscribers: OrderedDictionary<ConnectionID, Subscription> = [:]
    var pushBuckets: [DeviceID: TokenBucket] = [:]
    /// The operator blocked the account: authentications are refused (ACCOUNT_BLOCKED).
    var blocked: Bool
    /// The recovery blob and its guess counters (staged changes included).
    var recovery: RecoveryRecord?

    init(record: AccountRecord, log: DeviceLog) {
        self.log = log
        committedHead = record.headCursor
        deliveredHead = record.headCursor
        assignedHead = record.headCursor
        version = record.version
        storeVersion = record.version
        storedBytes = record.storedBytes
        chains = record.chains
        newestSnapshots = record.newestSnapshots
        snapshotBytes = record.snapshotBytes
        blocked = record.blocked
        recovery = record.recovery
    }

    /// Replaces the durable parts after a reload and forgets what was staged on the old copy;
    /// connections, rate limits, fanout progress and the other processes' announcements stay
    /// (change sets committed elsewhere meanwhile are read and sent by a fanout read).
    ///
    /// Rows still counted in ``pendingWrites`` stay counted (a mailbox slot staged meanwhile
    /// commits whatever the account's state). With nobody subscribed there is nothing to send:
    /// the delivered head moves to the store's.
    mutating func reload(from record: AccountRecord, log: DeviceLog) {
        self.log = log
        committedHead = record.headCursor
        assignedHead = record.headCursor
        storedBytes = record.storedBytes
        chains = record.chains
        staged = [:]
        newestSnapshots = record.newestSnapshots
        snapshotBytes = record.snapshotBytes
        version = record.version
        blocked = record.blocked
        recovery = record.recovery
        storeVersion = max(storeVersion, record.version)
        needsReload = false
        remoteChanged = false
        fanoutNeedsAccount = false
        if subscribers.isEmpty { deliveredHead = max(deliveredHead, record.headCursor) }
    }

    /// Forgets the staged refs that batch `id` committed and moves the committed head past its
    /// rows (a later batch may already have restaged one of the positions: that ref stays).
    mutating func settle(_ rows: [WriteBatch.ChangeSetRow], batch id: UInt64) {
        for row in rows {
            let key = ChainSeq(chain: row.chain, seq: row.seq)
            if staged[key]?.batch == id { staged[key] = nil }
            committedHead = max(committedHead, row.cursor)
        }
    }

    /// Whether `device` may act as a member now: an active device, or the current recovery key.
    func member(_ device: DeviceID) -> (key: DeviceLog.Member, isRecoveryKey: Bool)? {
        if log.isActive(device, atIndex: log.headIndex), let member = log.members[device] {
            return (member, false)
        }
        if let recovery = log.recoveryKey, recovery.id == device { return (recovery.member, true) }
        return nil
    }

    /// The assistant `id` if the log grants it access now (not revoked; its expiry is checked
    /// against the clock by the caller).
    func assistant(_ id: DeviceID) -> AssistantMember? {
        guard let assistant = log.assistants[id], assistant.endedAt == nil else { return nil }
        return assistant
    }
}
