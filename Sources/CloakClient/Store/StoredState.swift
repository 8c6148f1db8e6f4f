import CloakProtocol
import CloakSQLite
import Foundation
import GRDB

/// Everything ``ClientCore/load()`` reads at start-up, in one read transaction.
struct StoredState {
    var replica: [UInt8]?
    var removed = false
    var logEntries: [[UInt8]] = []
    var epochKeys: [(UInt64, [UInt8])] = []
    var chains: [ChainKey: ChainPosition] = [:]
    var claimedChains: Set<ChainKey> = []
    var documents: [(ConversationID, [UInt8], Int64)] = []
    var pending: [(Int64, ConversationID, [UInt8])] = []
    var held: [([UInt8], HoldReason)] = []

    static func load(_ db: Database) throws -> StoredState {
        var state = StoredState()
        state.replica = try db.meta("replica")
        state.removed = try db.meta("removed") != nil
        state.logEntries = try Data.fetchAll(db, sql: "SELECT wire FROM device_log ORDER BY idx").map(Array.init)
        state.epochKeys = try Row.fetchAll(db, sql: "SELECT epoch, sealed FROM epoch_keys").map { row in
            (UInt64(row["epoch"] as Int64), Array(row["sealed"] as Data))
        }
        for row in try Row.fetchAll(db, sql: "SELECT conversation, author, seq, hash, forked FROM chains") {
            let key = ChainKey(
                conversation: try ConversationID(stored: row["conversation"]),
                author: try DeviceID(stored: row["author"]))
            state.chains[key] = ChainPosition(
                seq: UInt64(row["seq"] as Int64), hash: try Digest32(stored: row["hash"]),
                forked: (row["forked"] as Int64) != 0)
        }
        for row in try Row.fetchAll(db, sql: "SELECT DISTINCT conversation, device FROM claimed_heads") {
            state.claimedChains.insert(
                ChainKey(
                    conversation: try ConversationID(stored: row["conversation"]),
                    author: try DeviceID(stored: row["device"])))
        }
        state.documents = try Row.fetchAll(db, sql: "SELECT conversation, sealed, applied_through FROM documents").map {
            (try ConversationID(stored: $0["conversation"]), Array($0["sealed"] as Data),
             $0["applied_through"] as Int64)
        }
        state.pending = try Row.fetchAll(db, sql: "SELECT id, conversation, sealed FROM pending_ops ORDER BY id").map {
            ($0["id"] as Int64, try ConversationID(stored: $0["conversation"]), Array($0["sealed"] as Data))
        }
        state.held = try Row.fetchAll(db, sql: "SELECT wire, reason FROM held").map { row in
            (Array(row["wire"] as Data), HoldReason(stored: row["reason"] as String))
        }
        return state
    }
}

extension HoldReason {
    /// The reason as stored in the `held` table.
    var stored: String {
        switch self {
        case .deviceLog(let index): "log:\(index)"
        case .epochKey(let epoch): "key:\(epoch)"
        case .gap(let seq): "gap:\(seq)"
        }
    }

    init(stored: String) {
        let parts = stored.split(separator: ":")
        let value = parts.count == 2 ? UInt64(parts[1]) ?? 0 : 0
        switch parts.first {
        case "log": self = .deviceLog(index: value)
        case "key": self = .epochKey(value)
        default: self = .gap(expectedSeq: value)
        }
    }
}

// The statements below run once or more per change set: they are prepared once per
// connection (cachedStatement) instead of parsed and authorised on every call.
extension Database {
    /// Inserts an accepted change set; returns its local row id.
    func insertChangeSet(_ changeSet: ChangeSet, local: Bool) throws -> Int64 {
        let h = changeSet.header
        // In place: every received change set passes through here, and GRDB's argument path
        // wanted a fresh `Data` copy of its whole wire.
        let inserted = try cachedStatement(
            sql: """
                INSERT INTO change_sets(conversation, author, seq, hash, wire, local) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(hash) DO NOTHING
                """
        ).executeInPlace([
            .id(h.conversation), .id(h.author), .integer(Int64(clamping: h.seq)), .id(changeSet.hash),
            .blob(changeSet.wire), .integer(local ? 1 : 0),
        ])
        if inserted > 0 { return lastInsertedRowID }
        return try Int64.fetchOne(
            cachedStatement(sql: "SELECT id FROM change_sets WHERE hash = ?"), arguments: [Data(changeSet.hash.bytes)]) ?? 0
    }

    func setChain(_ key: ChainKey, _ position: ChainPosition) throws {
        try cachedStatement(
            sql: """
                INSERT INTO chains(conversation, author, seq, hash, forked) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(conversation, author) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
                forked = excluded.forked
                """
        ).execute(arguments: [
            Data(key.conversation.bytes), Data(key.author.bytes), Int64(position.seq), Data(position.hash.bytes),
            position.forked ? 1 : 0,
        ])
    }

    func storedHash(conversation: ConversationID, author: DeviceID, seq: UInt64) throws -> ChangeSetHash? {
        try Data.fetchOne(
            cachedStatement(sql: "SELECT hash FROM change_sets WHERE conversation = ? AND author = ? AND seq = ?"),
            arguments: [Data(conversation.bytes), Data(author.bytes), Int64(seq)]
        ).map { try Digest32(stored: $0) }
    }

    func recordEvent(_ event: SecurityEvent, at time: UInt64) throws {
        try cachedStatement(
            sql: "INSERT INTO security_events(kind, conversation, device, seq, detail, at) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(
            arguments: [
                event.kind.rawValue, event.conversation.map { Data($0.bytes) }, event.device.map { Data($0.bytes) },
                event.seq.map { Int64($0) }, event.detail, Int64(time),
            ])
        try cachedStatement(sql: "DELETE FROM security_events WHERE id <= ?")
            .execute(arguments: [lastInsertedRowID - Int64(ClientCore.securityEventsKept)])
    }

    func recordRejected(_ wire: [UInt8], hash: ChangeSetHash?, reason: String, at time: UInt64) throws {
        try cachedStatement(sql: "INSERT INTO rejected(hash, wire, reason, received_at) VALUES (?, ?, ?, ?)")
            .execute(arguments: [hash.map { Data($0.bytes) }, Data(wire), reason, Int64(time)])
        try cachedStatement(sql: "DELETE FROM rejected WHERE rowid <= ?")
            .execute(arguments: [lastInsertedRowID - Int64(ClientCore.rejectedKept)])
    }
}

extension ClientCore {
    /// Rejected change sets kept for diagnosis; older ones are dropped so a hostile server
    /// cannot grow the store without bound by sending garbage.
    static let rejectedKept = 1_000

    /// Security events kept in the store, newest first; the app's stream has seen every one,
    /// and a hostile server sending garbage must not grow the store without bound (ADV-16).
    static let securityEventsKept = 2_000

    /// How many rejected change sets the store keeps now.
    func rejectedCount() throws(ClientError) -> Int {
        try store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rejected") ?? 0 }
    }

    /// Security events recorded in the store, oldest first.
    func recordedEvents() throws(ClientError) -> [SecurityEvent] {
        try store.read { db in
            try Row.fetchAll(db, sql: "SELECT kind, conversation, device, seq, detail FROM security_events ORDER BY id")
                .map { row in
                    try SecurityEvent(
                        SecurityEvent.Kind(rawValue: row["kind"]) ?? .protocolViolation,
                        conversation: (row["conversation"] as Data?).map { try ConversationID(stored: $0) },
                        device: (row["device"] as Data?).map { try DeviceID(stored: $0) },
                        seq: (row["seq"] as Int64?).map { UInt64($0) }, detail: row["detail"])
                }
        }
    }
}

extension ClientCore {
    /// Every accepted change set, in local order, as stored (ciphertext): for diagnosis and for
    /// re-feeding a device in tests and the simulator.
    func storedChangeSetWires() throws(ClientError) -> [[UInt8]] {
        try store.read { db in try Data.fetchAll(db, sql: "SELECT wire FROM change_sets ORDER BY id").map(Array.init) }
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
