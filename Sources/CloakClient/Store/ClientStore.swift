import CloakProtocol
import Foundation
import GRDB

/// The device's local database (GRDB over SQLite, WAL, synchronous=FULL): the device log,
/// epoch keys, every accepted change set (ciphertext, as received or sealed), chain positions,
/// the outbox, pending local operations, materialised conversation states, held and rejected
/// change sets, and security events. Secrets and plaintext are stored only through
/// ``LocalCipher``.
///
/// All access is synchronous (the sans-IO core calls it directly; the simulator uses an
/// in-memory database). Each ``write(_:)`` is one transaction, so a crash at any point leaves
/// either all of an operation's rows or none.
struct ClientStore: Sendable {
    let queue: DatabaseQueue

    /// Opens (creating and migrating) the store at `path`, or an in-memory store for nil.
    init(path: String?) throws(ClientError) {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA synchronous = FULL")
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

    func write<T>(_ body: (Database) throws -> T) throws(ClientError) -> T {
        do { return try queue.write(body) } catch let error as ClientError { throw error } catch {
            throw .storage(Self.describe(error))
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws(ClientError) -> T {
        do { return try queue.read(body) } catch let error as ClientError { throw error } catch {
            throw .storage(Self.describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let database = error as? DatabaseError { return "SQLite error \(database.resultCode.rawValue)" }
        return "local store error"
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                CREATE TABLE device_log (idx INTEGER PRIMARY KEY, wire BLOB NOT NULL);
                CREATE TABLE epoch_keys (epoch INTEGER PRIMARY KEY, sealed BLOB NOT NULL);
                CREATE TABLE change_sets (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    conversation BLOB NOT NULL, author BLOB NOT NULL, seq INTEGER NOT NULL,
                    hash BLOB NOT NULL UNIQUE, wire BLOB NOT NULL, local INTEGER NOT NULL);
                CREATE UNIQUE INDEX change_sets_chain ON change_sets(conversation, author, seq);
                CREATE TABLE chains (
                    conversation BLOB NOT NULL, author BLOB NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
                    forked INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (conversation, author));
                CREATE TABLE outbox (change_set INTEGER PRIMARY KEY REFERENCES change_sets(id));
                CREATE TABLE pending_ops (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, conversation BLOB NOT NULL, sealed BLOB NOT NULL);
                CREATE TABLE documents (
                    conversation BLOB PRIMARY KEY, sealed BLOB NOT NULL, applied_through INTEGER NOT NULL);
                CREATE TABLE held (
                    hash BLOB PRIMARY KEY, wire BLOB NOT NULL, reason TEXT NOT NULL, received_at INTEGER NOT NULL);
                CREATE TABLE rejected (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB, wire BLOB NOT NULL, reason TEXT NOT NULL,
                    received_at INTEGER NOT NULL);
                CREATE TABLE security_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, conversation BLOB, device BLOB,
                    seq INTEGER, detail TEXT NOT NULL, at INTEGER NOT NULL);
                CREATE TABLE claimed_heads (
                    conversation BLOB NOT NULL, device BLOB NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
                    claimed_by BLOB NOT NULL, PRIMARY KEY (conversation, device, seq));
                CREATE TABLE snapshots (
                    conversation BLOB PRIMARY KEY, hash BLOB NOT NULL, author BLOB NOT NULL, snapshot_seq INTEGER NOT NULL);
                """)
        }
        migrator.registerMigration("v2-pending-envelopes") { db in
            // Key envelopes this device must still hand to the server (after a removal it
            // initiated): kept until the server confirms, so a lost reply loses no key.
            try db.execute(sql: "CREATE TABLE pending_envelopes (id INTEGER PRIMARY KEY AUTOINCREMENT, wire BLOB NOT NULL)")
        }
        migrator.registerMigration("v3-snapshot-coverage") { db in
            // How much the newest recorded snapshot covers, to recognise a rollback (ADV-12).
            try db.execute(sql: "ALTER TABLE snapshots ADD COLUMN covered_total INTEGER NOT NULL DEFAULT 0")
        }
        return migrator
    }
}

extension Database {
    func meta(_ key: String) throws -> [UInt8]? {
        try Data.fetchOne(cachedStatement(sql: "SELECT value FROM meta WHERE key = ?"), arguments: [key]).map(Array.init)
    }

    func setMeta(_ key: String, _ value: [UInt8]) throws {
        try cachedStatement(
            sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        ).execute(arguments: [key, Data(value)])
    }

    func metaUInt64(_ key: String) throws -> UInt64? {
        guard let bytes = try meta(key), bytes.count == 8 else { return nil }
        return bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    func setMetaUInt64(_ key: String, _ value: UInt64) throws {
        try setMeta(key, (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) })
    }
}
