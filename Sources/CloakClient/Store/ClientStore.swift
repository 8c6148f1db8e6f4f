public import CloakProtocol

/// Where the client core keeps everything durable: the device log, epoch keys, every accepted
/// change set (ciphertext, as received or sealed), chain positions, the outbox, pending local
/// operations, saved conversation states, held and rejected change sets, and security events.
///
/// The core never writes SQL: it states what it stores in the typed operations of
/// ``StoreTransaction``, and an implementation decides how. `SQLiteClientStore` (GRDB, WAL,
/// `synchronous=FULL`) is what apps get; the simulator's store keeps the same tables in memory
/// and can lose whatever was not committed when a simulated device crashes, so the core's
/// durability is tested against both (`ClientStoreConformance` in the tests).
///
/// ```swift
/// let store = try SQLiteClientStore(path: directory.appendingPathComponent("cloak.sqlite").path)
/// let cursor = try store.read { tx in try tx.meta(.cursor) }
/// try store.write { tx in try tx.setMeta(.cursor, bytes) }
/// ```
///
/// Each ``write(_:)`` is one transaction: a crash at any point leaves either all of its
/// changes or none. Secrets and plaintext reach a store only sealed by the local cipher.
@_spi(Simulation)
public protocol ClientStore: AnyObject {
    /// Runs `body` in a read transaction.
    func read<T>(_ body: (any StoreTransaction) throws -> T) throws(ClientError) -> T
    /// Runs `body` in one write transaction: if it throws, nothing it wrote remains.
    func write<T>(_ body: (any StoreTransaction) throws -> T) throws(ClientError) -> T
    /// Makes what committed transactions deleted unreadable in the store's files too (old
    /// copies in a journal or in freed pages), after keys were wiped (PROTOCOL.md §23).
    func purgeDeleted() throws(ClientError)
}

@_spi(Simulation)
extension ClientStore {
    /// A store that keeps nothing it deleted (memory) has nothing to purge.
    public func purgeDeleted() throws(ClientError) {}
}

/// The keys of the store's small key-value table.
@_spi(Simulation)
public enum MetaKey: String, Sendable, CaseIterable {
    /// The CRDT replica state (operation counter and clock): never reset, or ids repeat.
    case replica
    /// Present once this device verified its own removal.
    case removed
    /// The newest cursor this device processed (`LE64`).
    case cursor
    /// The hash of the change set delivered at ``cursor`` (the subscription's anchor).
    case cursorAnchor = "cursor-anchor"
    /// The next epoch's key, sealed, remembered before a removal this device signs is sent.
    case pendingEpochKey = "pending-epoch-key"
    /// A link this new device began and has not finished (invitation, offer, answer), sealed.
    case pendingLink = "pending-link"
    /// A link this device agreed to commit (both users said yes), sealed, until it is done.
    case pendingAcceptance = "pending-acceptance"
    /// A recovery that appended (or was about to append) this device, sealed, until it is done.
    case pendingRecovery = "pending-recovery"
    /// The newest recovery-attempt notice this device reported (`LE64` ms), so each is told once.
    case recoveryNoticeAt = "recovery-notice-at"
    /// The newest "recovery succeeded after guesses" notice this device reported (`LE64` ms).
    case recoverySuccessNoticeAt = "recovery-success-notice-at"
    /// An assistant's conversation keys (PROTOCOL.md §29), sealed as one list.
    case assistantKeys = "assistant-keys"
    /// The device-log head index an assistant had verified when its last catch-up from cursor
    /// 0 began (`LE64`): conversations granted after it have history it has not fetched (§29).
    case scopeHistoryThrough = "scope-history-through"
    /// Snapshots of an assistant's scope served before their conversation's key (a
    /// `SnapshotList`), loaded when the key arrives (§29).
    case awaitingSnapshots = "awaiting-snapshots"
    /// Assistants (16-byte ids, concatenated) whose grant this device began and whose
    /// conversation-key envelopes may not have reached the server yet (§29).
    case unsealedGrants = "unsealed-grants"
}

/// A stored change set as the core reads it back: its local row id (the order in which this
/// device stored it), its conversation and its wire bytes.
@_spi(Simulation)
public struct StoredChangeSet: Sendable {
    /// Local row id, increasing in storage order.
    public let id: Int64
    /// Its conversation.
    public let conversation: ConversationID
    /// The serialised `ChangeSet`.
    public let wire: [UInt8]

    /// Creates a row value.
    public init(id: Int64, conversation: ConversationID, wire: [UInt8]) {
        self.id = id
        self.conversation = conversation
        self.wire = wire
    }
}

/// A conversation's saved (sealed) state and the newest local change-set row it includes.
@_spi(Simulation)
public struct SavedDocument: Sendable {
    /// The conversation.
    public let conversation: ConversationID
    /// The state sealed by the local cipher.
    public let sealed: [UInt8]
    /// Every stored change set with a row id up to this one is in the state.
    public let appliedThrough: Int64

    /// Creates a row value.
    public init(conversation: ConversationID, sealed: [UInt8], appliedThrough: Int64) {
        self.conversation = conversation
        self.sealed = sealed
        self.appliedThrough = appliedThrough
    }
}

/// The newest snapshot of a conversation this device knows (its lineage, §13).
@_spi(Simulation)
public struct SnapshotLineage: Sendable, Equatable {
    /// The snapshot's hash.
    public let hash: SnapshotHash
    /// Its author's snapshot sequence number.
    public let snapshotSeq: UInt64
    /// Sum of the seqs it covers: a served snapshot covering less is a rollback (ADV-12).
    public let coveredTotal: UInt64

    /// Creates a row value.
    public init(hash: SnapshotHash, snapshotSeq: UInt64, coveredTotal: UInt64) {
        self.hash = hash
        self.snapshotSeq = snapshotSeq
        self.coveredTotal = coveredTotal
    }
}

/// A signed claim, inside another member's change set, that a chain had reached `seq` with
/// `hash`: kept until this device holds that position, then checked (ADV-13).
@_spi(Simulation)
public struct HeadClaim: Sendable, Hashable {
    /// The claimed chain.
    public let chain: ChainKey
    /// The claimed position.
    public let seq: UInt64
    /// The claimed hash.
    public let hash: ChangeSetHash
    /// Who claimed it.
    public let claimedBy: DeviceID

    /// Creates a claim.
    public init(chain: ChainKey, seq: UInt64, hash: ChangeSetHash, claimedBy: DeviceID) {
        self.chain = chain
        self.seq = seq
        self.hash = hash
        self.claimedBy = claimedBy
    }
}

/// One store transaction's typed operations. Every method may throw a storage error, which
/// aborts the whole transaction.
@_spi(Simulation)
public protocol StoreTransaction {
    // MARK: Key-value
    /// The value under `key`.
    func meta(_ key: MetaKey) throws -> [UInt8]?
    /// Sets the value under `key`.
    func setMeta(_ key: MetaKey, _ value: [UInt8]) throws
    /// Deletes the value under `key`.
    func deleteMeta(_ key: MetaKey) throws

    // MARK: Device log and keys
    /// The stored device-log entries (wire bytes) in index order.
    func deviceLogEntries() throws -> [[UInt8]]
    /// Stores (or replaces) the entry at `index`.
    func putDeviceLogEntry(index: UInt64, wire: [UInt8]) throws
    /// Every stored epoch key, sealed by the local cipher.
    func epochKeys() throws -> [(epoch: UInt64, sealed: [UInt8])]
    /// Stores (or replaces) an epoch key.
    func putEpochKey(epoch: UInt64, sealed: [UInt8]) throws
    /// Deletes every epoch key (this device was removed).
    func deleteEpochKeys() throws
    /// Key envelopes waiting for the server, oldest first, with their queue ids.
    func queuedEnvelopes(limit: Int) throws -> [(id: Int64, wire: [UInt8])]
    /// Queues an envelope for the server.
    func queueEnvelope(_ wire: [UInt8]) throws
    /// Removes queued envelopes the server stored (or, with nil, all of them).
    func deleteQueuedEnvelopes(_ ids: [Int64]?) throws

    // MARK: Change sets and chains
    /// Stores an accepted change set (a second copy with the same hash is ignored); returns
    /// its local row id.
    func insertChangeSet(_ changeSet: ChangeSet, local: Bool) throws -> Int64
    /// The local row id of the change set with this hash.
    func changeSetID(hash: ChangeSetHash) throws -> Int64?
    /// The hash of the stored change set at this chain position.
    func storedHash(conversation: ConversationID, author: DeviceID, seq: UInt64) throws -> ChangeSetHash?
    /// Stored change sets with a row id above `after`, in row order, of one conversation or all.
    func changeSets(in conversation: ConversationID?, after: Int64) throws -> [StoredChangeSet]
    /// Deletes a stored change set (and its outbox entry).
    func deleteChangeSet(id: Int64) throws
    /// The newest local row id (0 without change sets).
    func newestChangeSetID() throws -> Int64
    /// Every chain position.
    func chains() throws -> [ChainKey: ChainPosition]
    /// Sets a chain position.
    func setChain(_ key: ChainKey, _ position: ChainPosition) throws
    /// Forgets a chain position.
    func deleteChain(_ key: ChainKey) throws

    // MARK: Outbox and pending operations
    /// Puts a stored change set (by row id) into the outbox.
    func addToOutbox(_ id: Int64) throws
    /// The oldest unacknowledged change sets' wire bytes, in the order they were sealed.
    func outbox(limit: Int) throws -> [[UInt8]]
    /// Removes the change set with this hash from the outbox.
    func removeFromOutbox(hash: ChangeSetHash) throws
    /// Marks the outbox change set with this hash as sent in a push whose answer has not been
    /// processed (or clears the mark); a hash not in the outbox is ignored. The mark outlives a
    /// restart: the server may hold such a change set, so it is never re-sealed (§19).
    func setUnanswered(hash: ChangeSetHash, _ unanswered: Bool) throws
    /// The outbox change sets marked unanswered, in the order they were sealed.
    func unansweredOutbox() throws -> [ChangeSetHash]
    /// Unsealed local operations (sealed by the local cipher), oldest first.
    func pendingOperations() throws -> [(id: Int64, conversation: ConversationID, sealed: [UInt8])]
    /// Stores unsealed local operations; returns their row id.
    func insertPendingOperations(conversation: ConversationID, sealed: [UInt8]) throws -> Int64
    /// Deletes pending operations that were sealed into a change set.
    func deletePendingOperations(id: Int64) throws

    // MARK: Saved states and snapshots
    /// Every saved conversation state.
    func savedDocuments() throws -> [SavedDocument]
    /// One conversation's saved state.
    func savedDocument(_ conversation: ConversationID) throws -> SavedDocument?
    /// Saves (or replaces) a conversation's state.
    func putSavedDocument(_ document: SavedDocument) throws
    /// Forgets a conversation's saved state (it is rebuilt from its change sets).
    func deleteSavedDocument(_ conversation: ConversationID) throws
    /// The state a conversation started from when this device joined it from a snapshot
    /// (`appliedThrough`: the newest change-set row then), which its stored change sets do not
    /// reach back to: a rebuild after a late cut-off starts from it instead of from nothing.
    func documentBase(_ conversation: ConversationID) throws -> SavedDocument?
    /// Records the state a conversation started from (see ``documentBase(_:)``).
    func putDocumentBase(_ document: SavedDocument) throws
    /// Forgets the state a conversation started from: it is fetched again from its first
    /// change set (a late cut-off that snapshot's state reaches past, PROTOCOL.md §10).
    func deleteDocumentBase(_ conversation: ConversationID) throws
    /// The row id after which stored change sets must be replayed at start-up: the oldest
    /// `appliedThrough` of any conversation that has change sets (0 for one never saved).
    func replayStart() throws -> Int64
    /// The newest snapshot lineage recorded for a conversation.
    func snapshotLineage(_ conversation: ConversationID) throws -> SnapshotLineage?
    /// Records a snapshot as the newest of its conversation unless one covering more is known.
    func recordSnapshotLineage(_ conversation: ConversationID, _ lineage: SnapshotLineage, author: DeviceID) throws

    // MARK: Receiving
    /// Change sets held for a log entry, key or gap (wire, reason as stored).
    func heldChangeSets() throws -> [(wire: [UInt8], reason: String)]
    /// Holds a change set (replacing an earlier hold of the same hash).
    func putHeld(hash: ChangeSetHash, wire: [UInt8], reason: String, at time: UInt64) throws
    /// Releases a held change set.
    func deleteHeld(hash: ChangeSetHash) throws
    /// Every signed head claim not yet checked against a change set this device holds.
    func claims() throws -> [HeadClaim]
    /// Records a claim (each distinct (chain, seq, hash) once).
    func putClaim(_ claim: HeadClaim) throws
    /// Forgets the claims of a chain up to `seq` (checked once the chain reached them).
    func deleteClaims(_ key: ChainKey, throughSeq seq: UInt64) throws
    /// Open incidents (withheld data, a rolled-back server…).
    func incidents() throws -> [Incident]
    /// Records (or replaces) an open incident.
    func putIncident(_ incident: Incident) throws
    /// Closes an incident.
    func deleteIncident(id: String) throws
    /// When each device was last heard of (a change set of it accepted), ms.
    func heard() throws -> [DeviceID: UInt64]
    /// Records when a device was last heard of.
    func setHeard(_ device: DeviceID, at time: UInt64) throws
    /// Keeps a rejected change set for diagnosis (the newest `kept` are kept).
    func recordRejected(_ wire: [UInt8], hash: ChangeSetHash?, reason: String, at time: UInt64, kept: Int) throws
    /// How many rejected change sets are kept.
    func rejectedCount() throws -> Int
    /// Records a security event (the newest `kept` are kept).
    func recordEvent(_ event: SecurityEvent, at time: UInt64, kept: Int) throws
    /// Recorded security events, oldest first.
    func events() throws -> [SecurityEvent]
}
