import CloakProtocol
import CloakSQLite
import Foundation
import GRDB

/// The ``ClientStore`` apps use: one SQLite file (GRDB, WAL, `synchronous=FULL`,
/// `secure_delete`), or an in-memory database for tests and benchmarks. A committed write
/// survives a crash or a power cut; nothing of a failed one remains; what is deleted is
/// overwritten, and ``purgeDeleted()`` empties the write-ahead log of older copies.
///
/// ```swift
/// let store = try SQLiteClientStore(path: directory.appendingPathComponent("cloak.sqlite").path)
/// ```
@_spi(Simulation)
public final class SQLiteClientStore: ClientStore, Sendable {
    let queue: DatabaseQueue

    /// Opens (creating and migrating) the store at `path`, or an in-memory store for nil.
    public init(path: String?) throws(ClientError) {
        var configuration = Configuration()
        // Another connection to the file (the CLI while an app syncs, a store reopened while its
        // old instance finishes a write) holds the lock a moment: wait, not fail with SQLITE_BUSY.
        configuration.busyMode = .timeout(Self.busyTimeoutSeconds)
        configuration.prepareDatabase { db in
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // Deleted rows (keys wiped on removal, finished pending flows) are overwritten
                // with zeros, not left readable in freed space of the file.
                try db.execute(sql: "PRAGMA secure_delete = ON")
            }
        }
        do {
            if let path {
                queue = try DatabaseQueue(path: path, configuration: configuration)
                try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
            } else {
                queue = try DatabaseQueue(configuration: configuration)
            }
            try Self.migrator.migrate(queue)
        } catch {
            throw .storage("cannot open the local store: \(Self.describe(error))")
        }
    }

    /// Runs `body` in a read transaction.
    public func read<T>(_ body: (any StoreTransaction) throws -> T) throws(ClientError) -> T {
        do { return try queue.read { db in try body(SQLiteTransaction(db: db)) } } catch let error as ClientError {
            throw error
        } catch {
            throw .storage(Self.describe(error))
        }
    }

    /// Runs `body` in one write transaction.
    public func write<T>(_ body: (any StoreTransaction) throws -> T) throws(ClientError) -> T {
        do { return try queue.write { db in try body(SQLiteTransaction(db: db)) } } catch let error as ClientError {
            throw error
        } catch {
            throw .storage(Self.describe(error))
        }
    }

    /// Copies the write-ahead log into the database file (where deleted rows are already
    /// zeroed) and truncates it, so no older copy of a deleted row stays in either file.
    public func purgeDeleted() throws(ClientError) {
        do {
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        } catch {
            throw .storage("cannot purge deleted keys from the local store: \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        if let database = error as? DatabaseError { return "SQLite error \(database.resultCode.rawValue)" }
        return "local store error"
    }
}

/// A ``StoreTransaction`` over one GRDB `Database` access. The statements that run once or more
/// per change set are prepared once per connection (`cachedStatement`) instead of parsed and
/// authorised on every call.
struct SQLiteTransaction: StoreTransaction {
    let db: Database

    func meta(_ key: MetaKey) throws -> [UInt8]? {
        try Data.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = ?"), arguments: [key.rawValue])
            .map(Array.init)
    }

    func setMeta(_ key: MetaKey, _ value: [UInt8]) throws {
        try db.cachedStatement(
            sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        ).execute(arguments: [key.rawValue, Data(value)])
    }

    func deleteMeta(_ key: MetaKey) throws {
        try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [key.rawValue])
    }

    func deviceLogEntries() throws -> [[UInt8]] {
        try Data.fetchAll(db, sql: "SELECT wire FROM device_log ORDER BY idx").map(Array.init)
    }

    func putDeviceLogEntry(index: UInt64, wire: [UInt8]) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO device_log(idx, wire) VALUES (?, ?)", arguments: [Int64(index), Data(wire)])
    }

    func epochKeys() throws -> [(epoch: UInt64, sealed: [UInt8])] {
        try Row.fetchAll(db, sql: "SELECT epoch, sealed FROM epoch_keys ORDER BY epoch").map { row in
            (UInt64(row["epoch"] as Int64), Array(row["sealed"] as Data))
        }
    }

    func putEpochKey(epoch: UInt64, sealed: [UInt8]) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO epoch_keys(epoch, sealed) VALUES (?, ?)", arguments: [Int64(epoch), Data(sealed)])
    }

    func deleteEpochKeys() throws {
        try db.execute(sql: "DELETE FROM epoch_keys")
    }

    func queuedEnvelopes(limit: Int) throws -> [(id: Int64, wire: [UInt8])] {
        try Row.fetchAll(db, sql: "SELECT id, wire FROM pending_envelopes ORDER BY id LIMIT ?", arguments: [limit])
            .map { ($0["id"], Array($0["wire"] as Data)) }
    }

    func queueEnvelope(_ wire: [UInt8]) throws {
        try db.execute(sql: "INSERT INTO pending_envelopes(wire) VALUES (?)", arguments: [Data(wire)])
    }

    func deleteQueuedEnvelopes(_ ids: [Int64]?) throws {
        guard let ids else { return try db.execute(sql: "DELETE FROM pending_envelopes") }
        for id in ids { try db.execute(sql: "DELETE FROM pending_envelopes WHERE id = ?", arguments: [id]) }
    }

    func insertChangeSet(_ changeSet: ChangeSet, local: Bool) throws -> Int64 {
        let h = changeSet.header
        // In place: every received change set passes through here, and GRDB's argument path
        // wanted a fresh `Data` copy of its whole wire.
        let inserted = try db.cachedStatement(
            sql: """
                INSERT INTO change_sets(conversation, author, seq, hash, wire, local) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(hash) DO NOTHING
                """
        ).executeInPlace([
            .id(h.conversation), .id(h.author), .integer(Int64(clamping: h.seq)), .id(changeSet.hash),
            .blob(changeSet.wire), .integer(local ? 1 : 0),
        ])
        if inserted > 0 { return db.lastInsertedRowID }
        return try changeSetID(hash: changeSet.hash) ?? 0
    }

    func changeSetID(hash: ChangeSetHash) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM change_sets WHERE hash = ?"), arguments: [hash.data])
    }

    func storedHash(conversation: ConversationID, author: DeviceID, seq: UInt64) throws -> ChangeSetHash? {
        try Data.fetchOne(
            db.cachedStatement(sql: "SELECT hash FROM change_sets WHERE conversation = ? AND author = ? AND seq = ?"),
            arguments: [conversation.data, author.data, Int64(seq)]
        ).map { try Digest32(stored: $0) }
    }

    func changeSets(in conversation: ConversationID?, after: Int64) throws -> [StoredChangeSet] {
        let rows: [Row] =
            if let conversation {
                try Row.fetchAll(
                    db, sql: "SELECT id, conversation, wire FROM change_sets WHERE conversation = ? AND id > ? ORDER BY id",
                    arguments: [conversation.data, after])
            } else {
                try Row.fetchAll(
                    db, sql: "SELECT id, conversation, wire FROM change_sets WHERE id > ? ORDER BY id", arguments: [after])
            }
        return try rows.map { row in
            StoredChangeSet(
                id: row["id"], conversation: try ConversationID(stored: row["conversation"]), wire: Array(row["wire"] as Data))
        }
    }

    func deleteChangeSet(id: Int64) throws {
        try db.execute(sql: "DELETE FROM outbox WHERE change_set = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM change_sets WHERE id = ?", arguments: [id])
    }

    func newestChangeSetID() throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(id), 0) FROM change_sets") ?? 0
    }

    func chains() throws -> [ChainKey: ChainPosition] {
        var chains: [ChainKey: ChainPosition] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT conversation, author, seq, hash, forked FROM chains") {
            let key = ChainKey(
                conversation: try ConversationID(stored: row["conversation"]), author: try DeviceID(stored: row["author"]))
            chains[key] = ChainPosition(
                seq: UInt64(row["seq"] as Int64), hash: try Digest32(stored: row["hash"]), forked: (row["forked"] as Int64) != 0)
        }
        return chains
    }

    func setChain(_ key: ChainKey, _ position: ChainPosition) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO chains(conversation, author, seq, hash, forked) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(conversation, author) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                forked = excluded.forked
                """
        ).execute(arguments: [
            key.conversation.data, key.author.data, Int64(position.seq), position.hash.data, position.forked ? 1 : 0,
        ])
    }

    func deleteChain(_ key: ChainKey) throws {
        try db.execute(
            sql: "DELETE FROM chains WHERE conversation = ? AND author = ?", arguments: [key.conversation.data, key.author.data])
    }

    func addToOutbox(_ id: Int64) throws {
        try db.cachedStatement(sql: "INSERT INTO outbox(change_set) VALUES (?)").execute(arguments: [id])
    }

    func outbox(limit: Int) throws -> [[UInt8]] {
        try Data.fetchAll(
            db,
            sql: """
                SELECT change_sets.wire FROM outbox JOIN change_sets ON change_sets.id = outbox.change_set
                ORDER BY outbox.change_set LIMIT ?
                """, arguments: [limit]
        ).map(Array.init)
    }

    func removeFromOutbox(hash: ChangeSetHash) throws {
        try db.cachedStatement(sql: "DELETE FROM outbox WHERE change_set = (SELECT id FROM change_sets WHERE hash = ?)")
            .execute(arguments: [hash.data])
    }

    func pendingOperations() throws -> [(id: Int64, conversation: ConversationID, sealed: [UInt8])] {
        try Row.fetchAll(db, sql: "SELECT id, conversation, sealed FROM pending_ops ORDER BY id").map {
            ($0["id"] as Int64, try ConversationID(stored: $0["conversation"]), Array($0["sealed"] as Data))
        }
    }

    // Cached statements: every streamed token stores its operations, and parsing the SQL again
    // each time was a sixth of a token's cost.
    func insertPendingOperations(conversation: ConversationID, sealed: [UInt8]) throws -> Int64 {
        try db.cachedStatement(sql: "INSERT INTO pending_ops(conversation, sealed) VALUES (?, ?)")
            .execute(arguments: [conversation.data, Data(sealed)])
        return db.lastInsertedRowID
    }

    func deletePendingOperations(id: Int64) throws {
        try db.cachedStatement(sql: "DELETE FROM pending_ops WHERE id = ?").execute(arguments: [id])
    }

    func savedDocuments() throws -> [SavedDocument] {
        try Row.fetchAll(db, sql: "SELECT conversation, sealed, applied_through FROM documents ORDER BY conversation").map { row in
            SavedDocument(
                conversation: try ConversationID(stored: row["conversation"]), sealed: Array(row["sealed"] as Data),
                appliedThrough: row["applied_through"])
        }
    }

    func savedDocument(_ conversation: ConversationID) throws -> SavedDocument? {
        try document(conversation, in: "documents")
    }

    func putSavedDocument(_ document: SavedDocument) throws {
        try put(document, into: "documents")
    }

    func deleteSavedDocument(_ conversation: ConversationID) throws {
        try db.execute(sql: "DELETE FROM documents WHERE conversation = ?", arguments: [conversation.data])
    }

    func documentBase(_ conversation: ConversationID) throws -> SavedDocument? {
        try document(conversation, in: "document_bases")
    }

    func putDocumentBase(_ document: SavedDocument) throws {
        try put(document, into: "document_bases")
    }

    func deleteDocumentBase(_ conversation: ConversationID) throws {
        try db.execute(sql: "DELETE FROM document_bases WHERE conversation = ?", arguments: [conversation.data])
    }

    /// A sealed document state from `table` (`documents`: the current state; `document_bases`:
    /// the state a snapshot bootstrap started from). The two tables have one layout.
    private func document(_ conversation: ConversationID, in table: StaticString) throws -> SavedDocument? {
        try Row.fetchOne(
            db, sql: "SELECT sealed, applied_through FROM \(table) WHERE conversation = ?", arguments: [conversation.data]
        ).map { SavedDocument(conversation: conversation, sealed: Array($0["sealed"] as Data), appliedThrough: $0["applied_through"]) }
    }

    private func put(_ document: SavedDocument, into table: StaticString) throws {
        try db.execute(
            sql: """
                INSERT INTO \(table)(conversation, sealed, applied_through) VALUES (?, ?, ?)
                ON CONFLICT(conversation) DO UPDATE SET sealed = excluded.sealed, applied_through = excluded.applied_through
                """,
            arguments: [document.conversation.data, Data(document.sealed), document.appliedThrough])
    }

    func replayStart() throws -> Int64 {
        try Int64.fetchOne(
            db,
            sql: """
                SELECT COALESCE(MIN(COALESCE(documents.applied_through, 0)), 0)
                FROM (SELECT DISTINCT conversation FROM change_sets) AS known
                LEFT JOIN documents ON documents.conversation = known.conversation
                """) ?? 0
    }

    func snapshotLineage(_ conversation: ConversationID) throws -> SnapshotLineage? {
        try Row.fetchOne(
            db, sql: "SELECT hash, snapshot_seq, covered_total FROM snapshots WHERE conversation = ?",
            arguments: [conversation.data]
        ).map { row in
            SnapshotLineage(
                hash: try SnapshotHash(stored: row["hash"]), snapshotSeq: UInt64(row["snapshot_seq"] as Int64),
                coveredTotal: UInt64(row["covered_total"] as Int64))
        }
    }

    func recordSnapshotLineage(_ conversation: ConversationID, _ lineage: SnapshotLineage, author: DeviceID) throws {
        try db.execute(
            sql: """
                INSERT INTO snapshots(conversation, hash, author, snapshot_seq, covered_total) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(conversation) DO UPDATE SET hash = excluded.hash, author = excluded.author,
                snapshot_seq = excluded.snapshot_seq, covered_total = excluded.covered_total
                WHERE excluded.covered_total >= snapshots.covered_total
                """,
            arguments: [conversation.data, lineage.hash.data, author.data, Int64(lineage.snapshotSeq),
                        Int64(clamping: lineage.coveredTotal)])
    }

    func heldChangeSets() throws -> [(wire: [UInt8], reason: String)] {
        try Row.fetchAll(db, sql: "SELECT wire, reason FROM held").map { (Array($0["wire"] as Data), $0["reason"]) }
    }

    func putHeld(hash: ChangeSetHash, wire: [UInt8], reason: String, at time: UInt64) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO held(hash, wire, reason, received_at) VALUES (?, ?, ?, ?)",
            arguments: [hash.data, Data(wire), reason, Int64(clamping: time)])
    }

    func deleteHeld(hash: ChangeSetHash) throws {
        try db.execute(sql: "DELETE FROM held WHERE hash = ?", arguments: [hash.data])
    }

    func recordRejected(_ wire: [UInt8], hash: ChangeSetHash?, reason: String, at time: UInt64, kept: Int) throws {
        try db.cachedStatement(sql: "INSERT INTO rejected(hash, wire, reason, received_at) VALUES (?, ?, ?, ?)")
            .execute(arguments: [hash?.data, Data(wire), reason, Int64(clamping: time)])
        try db.cachedStatement(sql: "DELETE FROM rejected WHERE rowid <= ?")
            .execute(arguments: [db.lastInsertedRowID - Int64(kept)])
    }

    func rejectedCount() throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rejected") ?? 0
    }

    func recordEvent(_ event: SecurityEvent, at time: UInt64, kept: Int) throws {
        try db.cachedStatement(
            sql: "INSERT INTO security_events(kind, conversation, device, seq, detail, at) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(
            arguments: [
                event.kind.rawValue, event.conversation?.data, event.device?.data, event.seq.map { Int64(clamping: $0) },
                event.detail, Int64(clamping: time),
            ])
        try db.cachedStatement(sql: "DELETE FROM security_events WHERE id <= ?")
            .execute(arguments: [db.lastInsertedRowID - Int64(kept)])
    }

    func events() throws -> [SecurityEvent] {
        try Row.fetchAll(db, sql: "SELECT kind, conversation, device, seq, detail FROM security_events ORDER BY id").map { row in
            SecurityEvent(
                SecurityEvent.Kind(rawValue: row["kind"]) ?? .protocolViolation,
                conversation: try (row["conversation"] as Data?).map { try ConversationID(stored: $0) },
                device: try (row["device"] as Data?).map { try DeviceID(stored: $0) },
                seq: (row["seq"] as Int64?).map { UInt64($0) }, detail: row["detail"])
        }
    }
}

extension FixedLengthBytes {
    /// An identifier or hash read back from the local store. Another length means the store
    /// is damaged: an error, not a crash.
    init(stored data: Data) throws(ClientError) {
        do { try self.init(validating: data, field: "stored") } catch {
            throw .storage("a stored \(Self.self) has \(data.count) bytes, not \(Self.byteCount)")
        }
    }
}

extension InPlaceValue {
    /// An identifier or digest, bound from its inline bytes.
    static func id(_ value: some FixedLengthBytes) -> InPlaceValue { .small(value.withUnsafeBytes(SmallBlob.init)) }
}
