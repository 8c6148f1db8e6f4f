@_spi(Simulation) import CloakClient
import CloakProtocol

/// The tables of ``MemoryClientStore``, as plain values (copying them copies a device's disk).
struct MemoryTables {
    struct ChangeSetRow {
        let conversation: ConversationID
        let author: DeviceID
        let seq: UInt64
        let hash: ChangeSetHash
        let wire: [UInt8]
    }

    struct ClaimKey: Hashable {
        let chain: ChainKey
        let seq: UInt64
    }

    var meta: [MetaKey: [UInt8]] = [:]
    var deviceLog: [UInt64: [UInt8]] = [:]
    var epochKeys: [UInt64: [UInt8]] = [:]
    var envelopes: [Int64: [UInt8]] = [:]
    var changeSets: [Int64: ChangeSetRow] = [:]
    var changeSetByHash: [ChangeSetHash: Int64] = [:]
    var changeSetByChain: [ClaimKey: Int64] = [:]
    var chains: [ChainKey: ChainPosition] = [:]
    var outbox: Set<Int64> = []
    /// Outbox rows sent in a push whose answer was never processed (SQLite's `outbox.unanswered`).
    var unanswered: Set<Int64> = []
    var pending: [Int64: (conversation: ConversationID, sealed: [UInt8])] = [:]
    var documents: [ConversationID: SavedDocument] = [:]
    var documentBases: [ConversationID: SavedDocument] = [:]
    var snapshots: [ConversationID: SnapshotLineage] = [:]
    var held: [ChangeSetHash: (wire: [UInt8], reason: String)] = [:]
    var claims: [HeadClaim] = []
    var incidents: [String: Incident] = [:]
    var heard: [DeviceID: UInt64] = [:]
    var rejected: [(id: Int64, wire: [UInt8])] = []
    var events: [(id: Int64, event: SecurityEvent)] = []
    /// AUTOINCREMENT counters: like SQLite's, never reused, rolled back with their write.
    var nextID: [String: Int64] = [:]

    mutating func allocate(_ table: String) -> Int64 {
        let id = (nextID[table] ?? 0) + 1
        nextID[table] = id
        return id
    }

    func allBytes() -> [[UInt8]] {
        var out: [[UInt8]] = Array(meta.values) + Array(deviceLog.values) + Array(epochKeys.values) + Array(envelopes.values)
        out += changeSets.values.map(\.wire) + pending.values.map(\.sealed) + documents.values.map(\.sealed)
        out += documentBases.values.map(\.sealed)
        out += held.values.map(\.wire) + rejected.map(\.wire)
        out += events.map { Array($0.event.detail.utf8) }
        return out
    }
}

/// One transaction of a ``MemoryClientStore``: reads look at the tables, writes record how to
/// undo themselves.
struct MemoryTransaction: StoreTransaction {
    let store: MemoryClientStore
    let writable: Bool

    private var t: MemoryTables { store.tables }

    /// Sets `tables[keyPath][key]`, remembering the old value.
    private func set<K: Hashable, V>(_ path: WritableKeyPath<MemoryTables, [K: V]>, _ key: K, _ value: V?) throws {
        precondition(writable, "a write in a read transaction")
        try store.mutate { tables in
            let old = tables[keyPath: path][key]
            tables[keyPath: path][key] = value
            return { $0[keyPath: path][key] = old }
        }
    }

    /// Replaces a whole table value, remembering the old one.
    private func replace<V>(_ path: WritableKeyPath<MemoryTables, V>, _ value: V) throws {
        precondition(writable, "a write in a read transaction")
        try store.mutate { tables in
            let old = tables[keyPath: path]
            tables[keyPath: path] = value
            return { $0[keyPath: path] = old }
        }
    }

    private func allocate(_ table: String) throws -> Int64 {
        var id: Int64 = 0
        try store.mutate { tables in
            let old = tables.nextID[table]
            id = tables.allocate(table)
            return { $0.nextID[table] = old }
        }
        return id
    }

    func meta(_ key: MetaKey) throws -> [UInt8]? { t.meta[key] }
    func setMeta(_ key: MetaKey, _ value: [UInt8]) throws { try set(\.meta, key, value) }
    func deleteMeta(_ key: MetaKey) throws { try set(\.meta, key, nil) }

    func deviceLogEntries() throws -> [[UInt8]] { t.deviceLog.sorted { $0.key < $1.key }.map(\.value) }
    func putDeviceLogEntry(index: UInt64, wire: [UInt8]) throws { try set(\.deviceLog, index, wire) }
    func epochKeys() throws -> [(epoch: UInt64, sealed: [UInt8])] {
        t.epochKeys.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
    func putEpochKey(epoch: UInt64, sealed: [UInt8]) throws { try set(\.epochKeys, epoch, sealed) }
    func deleteEpochKeys() throws { try replace(\.epochKeys, [:]) }

    func queuedEnvelopes(limit: Int) throws -> [(id: Int64, wire: [UInt8])] {
        t.envelopes.sorted { $0.key < $1.key }.prefix(limit).map { ($0.key, $0.value) }
    }
    func queueEnvelope(_ wire: [UInt8]) throws { try set(\.envelopes, try allocate("envelopes"), wire) }
    func deleteQueuedEnvelopes(_ ids: [Int64]?) throws {
        guard let ids else { return try replace(\.envelopes, [:]) }
        for id in ids { try set(\.envelopes, id, nil) }
    }

    func insertChangeSet(_ changeSet: ChangeSet, local: Bool) throws -> Int64 {
        if let existing = t.changeSetByHash[changeSet.hash] {
            // SQLite's `ON CONFLICT DO NOTHING` still takes an AUTOINCREMENT number: so do we,
            // so that row ids (which order replays) match the real store's.
            _ = try allocate("change_sets")
            return existing
        }
        let h = changeSet.header
        let chain = MemoryTables.ClaimKey(chain: ChainKey(conversation: h.conversation, author: h.author), seq: h.seq)
        // The UNIQUE(conversation, author, seq) index of the SQLite store.
        guard t.changeSetByChain[chain] == nil else { throw ClientError.storage("UNIQUE constraint: change set chain") }
        let id = try allocate("change_sets")
        try set(\.changeSets, id, MemoryTables.ChangeSetRow(
            conversation: h.conversation, author: h.author, seq: h.seq, hash: changeSet.hash, wire: changeSet.wire))
        try set(\.changeSetByHash, changeSet.hash, id)
        try set(\.changeSetByChain, chain, id)
        return id
    }

    func changeSetID(hash: ChangeSetHash) throws -> Int64? { t.changeSetByHash[hash] }

    func storedHash(conversation: ConversationID, author: DeviceID, seq: UInt64) throws -> ChangeSetHash? {
        let key = MemoryTables.ClaimKey(chain: ChainKey(conversation: conversation, author: author), seq: seq)
        return t.changeSetByChain[key].flatMap { t.changeSets[$0]?.hash }
    }

    func changeSets(in conversation: ConversationID?, after: Int64) throws -> [StoredChangeSet] {
        t.changeSets.filter { $0.key > after && (conversation == nil || $0.value.conversation == conversation) }
            .sorted { $0.key < $1.key }
            .map { StoredChangeSet(id: $0.key, conversation: $0.value.conversation, wire: $0.value.wire) }
    }

    func deleteChangeSet(id: Int64) throws {
        guard let row = t.changeSets[id] else { return }
        if t.outbox.contains(id) { try leaveOutbox(id) }
        try set(\.changeSets, id, nil)
        try set(\.changeSetByHash, row.hash, nil)
        try set(\.changeSetByChain, MemoryTables.ClaimKey(chain: ChainKey(conversation: row.conversation, author: row.author), seq: row.seq), nil)
    }

    func newestChangeSetID() throws -> Int64 { t.changeSets.keys.max() ?? 0 }

    func chains() throws -> [ChainKey: ChainPosition] { t.chains }
    func setChain(_ key: ChainKey, _ position: ChainPosition) throws { try set(\.chains, key, position) }
    func deleteChain(_ key: ChainKey) throws { try set(\.chains, key, nil) }

    func addToOutbox(_ id: Int64) throws {
        var outbox = t.outbox
        guard outbox.insert(id).inserted else { throw ClientError.storage("UNIQUE constraint: outbox") }
        try replace(\.outbox, outbox)
    }

    func outbox(limit: Int) throws -> [[UInt8]] {
        t.outbox.sorted().prefix(limit).compactMap { t.changeSets[$0]?.wire }
    }

    func removeFromOutbox(hash: ChangeSetHash) throws {
        guard let id = t.changeSetByHash[hash], t.outbox.contains(id) else { return }
        try leaveOutbox(id)
    }

    /// Removes an outbox row, and its unanswered mark with it (a column of the row in SQLite).
    private func leaveOutbox(_ id: Int64) throws {
        var outbox = t.outbox
        outbox.remove(id)
        try replace(\.outbox, outbox)
        if t.unanswered.contains(id) {
            var unanswered = t.unanswered
            unanswered.remove(id)
            try replace(\.unanswered, unanswered)
        }
    }

    func setUnanswered(hash: ChangeSetHash, _ unanswered: Bool) throws {
        guard let id = t.changeSetByHash[hash], t.outbox.contains(id), t.unanswered.contains(id) != unanswered else { return }
        var marked = t.unanswered
        if unanswered { marked.insert(id) } else { marked.remove(id) }
        try replace(\.unanswered, marked)
    }

    func unansweredOutbox() throws -> [ChangeSetHash] {
        t.unanswered.sorted().compactMap { t.changeSets[$0]?.hash }
    }

    func pendingOperations() throws -> [(id: Int64, conversation: ConversationID, sealed: [UInt8])] {
        t.pending.sorted { $0.key < $1.key }.map { ($0.key, $0.value.conversation, $0.value.sealed) }
    }

    func insertPendingOperations(conversation: ConversationID, sealed: [UInt8]) throws -> Int64 {
        let id = try allocate("pending_ops")
        try set(\.pending, id, (conversation, sealed))
        return id
    }

    func deletePendingOperations(id: Int64) throws { try set(\.pending, id, nil) }

    func savedDocuments() throws -> [SavedDocument] { t.documents.values.sorted { $0.conversation < $1.conversation } }
    func savedDocument(_ conversation: ConversationID) throws -> SavedDocument? { t.documents[conversation] }
    func putSavedDocument(_ document: SavedDocument) throws { try set(\.documents, document.conversation, document) }
    func deleteSavedDocument(_ conversation: ConversationID) throws { try set(\.documents, conversation, nil) }
    func documentBase(_ conversation: ConversationID) throws -> SavedDocument? { t.documentBases[conversation] }
    func putDocumentBase(_ document: SavedDocument) throws { try set(\.documentBases, document.conversation, document) }
    func deleteDocumentBase(_ conversation: ConversationID) throws { try set(\.documentBases, conversation, nil) }

    func replayStart() throws -> Int64 {
        let known = Set(t.changeSets.values.map(\.conversation))
        return known.map { t.documents[$0]?.appliedThrough ?? 0 }.min() ?? 0
    }

    func snapshotLineage(_ conversation: ConversationID) throws -> SnapshotLineage? { t.snapshots[conversation] }

    func recordSnapshotLineage(_ conversation: ConversationID, _ lineage: SnapshotLineage, author: DeviceID) throws {
        if let known = t.snapshots[conversation], known.coveredTotal > lineage.coveredTotal { return }
        try set(\.snapshots, conversation, lineage)
    }

    func heldChangeSets() throws -> [(wire: [UInt8], reason: String)] {
        t.held.sorted { $0.key < $1.key }.map { ($0.value.wire, $0.value.reason) }
    }
    func putHeld(hash: ChangeSetHash, wire: [UInt8], reason: String, at time: UInt64) throws {
        try set(\.held, hash, (wire, reason))
    }
    func deleteHeld(hash: ChangeSetHash) throws { try set(\.held, hash, nil) }

    func claims() throws -> [HeadClaim] { t.claims }
    func putClaim(_ claim: HeadClaim) throws {
        guard !t.claims.contains(claim) else { return }
        try replace(\.claims, t.claims + [claim])
    }
    func deleteClaims(_ key: ChainKey, throughSeq seq: UInt64) throws {
        let kept = t.claims.filter { !($0.chain == key && $0.seq <= seq) }
        if kept.count != t.claims.count { try replace(\.claims, kept) }
    }
    func incidents() throws -> [Incident] { t.incidents.values.sorted { $0.id < $1.id } }
    func putIncident(_ incident: Incident) throws { try set(\.incidents, incident.id, incident) }
    func deleteIncident(id: String) throws { try set(\.incidents, id, nil) }
    func heard() throws -> [DeviceID: UInt64] { t.heard }
    func setHeard(_ device: DeviceID, at time: UInt64) throws { try set(\.heard, device, time) }

    func recordRejected(_ wire: [UInt8], hash: ChangeSetHash?, reason: String, at time: UInt64, kept: Int) throws {
        let id = try allocate("rejected")
        try replace(\.rejected, Array((t.rejected + [(id, wire)]).suffix(kept)))
    }
    func rejectedCount() throws -> Int { t.rejected.count }

    func recordEvent(_ event: SecurityEvent, at time: UInt64, kept: Int) throws {
        let id = try allocate("security_events")
        try replace(\.events, Array((t.events + [(id, event)]).suffix(kept)))
    }
    func events() throws -> [SecurityEvent] { t.events.map(\.event) }
}
