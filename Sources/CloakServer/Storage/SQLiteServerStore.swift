public import CloakProtocol
import CloakSQLite
import Foundation
import GRDB

/// The default ``ServerStore``: one SQLite database file through GRDB, in WAL mode with
/// `synchronous = FULL`, so a commit that returned is on disk (ADV-19) while readers never
/// block the writer. Group commit (one transaction per ``WriteBatch``) is what makes durable
/// acknowledgements fast: SQLite pays one fsync per transaction, not per row.
///
/// ```swift
/// let store = try SQLiteServerStore(path: "./cloak-data/cloak.sqlite")
/// try await store.migrate()
/// ```
public final class SQLiteServerStore: ServerStore {
    let pool: DatabasePool
    /// Copies committed WAL frames into the database file off the commit path.
    let checkpointer: WALCheckpointer

    /// Opens the database at `path`. A file that does not exist is created (with its directory)
    /// only when `create` is true, owner-only: the directory 0700, the file 0600 (SQLite gives
    /// its WAL and shared-memory files the database file's mode).
    public convenience init(path: String, create: Bool = true) throws(StoreError) {
        try self.init(path: path, checkpointInterval: .milliseconds(100), create: create)
    }

    /// The writer connection's page cache (the readers keep SQLite's default).
    static let writerCacheBytes = 32 << 20

    /// Opens the database with WAL checkpoints at most every `checkpointInterval` (tests use
    /// zero to see one after every commit).
    init(path: String, checkpointInterval: Duration, create: Bool = true) throws(StoreError) {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: path) {
            guard create else {
                throw .invalidLocation(
                    "The SQLite database \(path) does not exist. Check the path, or pass --create to create a new, "
                        + "empty database there.")
            }
            do {
                try FileManager.default.createDirectory(
                    at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
                else {
                    throw StoreError.invalidLocation(
                        "The SQLite database \(path) could not be created; check that this user may write to \(directory.path).")
                }
            } catch let error as StoreError {
                throw error
            } catch {
                throw .invalidLocation(
                    "The directory \(directory.path) for the SQLite database could not be created; check the path and "
                        + "that this user may write there.")
            }
        }
        do {
            var configuration = Configuration()
            // Another process (`cloak-server compact`) may hold the write lock briefly.
            configuration.busyMode = .timeout(10)
            configuration.prepareDatabase { db in
                // Only a new file takes it (an existing one keeps its size until a VACUUM). A
                // change-set row is ~1.4 KiB: a 4 KiB page holds two, leaving a third of it empty,
                // and every second row starts a page. 16 KiB pages hold eleven: the file and the
                // WAL are a quarter smaller, and SQLite alone wrote 60–66k instead of 48–51k
                // rows/s here in batches of 256 (`Benchmarks/floors/sqlite_rows.py` compares both).
                try db.execute(sql: "PRAGMA page_size = \(SQLiteSchema.pageSize)")
            }
            pool = try DatabasePool(path: path, configuration: configuration)
            try pool.writeWithoutTransaction { db in
                // Set on the writer after GRDB's WAL setup, which lowers `synchronous` to NORMAL
                // (commits not fsynced): an acknowledged change set must survive power loss.
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // SQLite's own checkpoint runs inside the commit that crosses its threshold and
                // writes every page a second time while acks wait; ``WALCheckpointer`` does it on
                // another thread. This higher threshold is only the backstop for when it lags.
                let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? SQLiteSchema.pageSize
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.backstopBytes / max(pageSize, 512))")
                try db.execute(sql: "PRAGMA journal_size_limit = \(WALCheckpointer.backstopBytes)")
                // Each account's rows land at their own place in the indexes and its own rows
                // of `chains` and `accounts`: with SQLite's default 2 MiB (125 pages of 16 KiB)
                // those pages fell out of the writer's cache between commits and were read
                // again. 256 devices ingested 17 % faster on average with 32 MiB (five
                // alternating runs); 1 and 16 devices changed within the noise. Only the
                // writer's connection gets it, and it fills only as the file grows.
                try db.execute(sql: "PRAGMA cache_size = -\(Self.writerCacheBytes / 1024)")
            }
            checkpointer = try WALCheckpointer(path: path, configuration: configuration, interval: checkpointInterval)
        } catch {
            throw .unavailable("the SQLite database \(path) could not be opened: \(Self.describe(error))")
        }
    }

    /// Applies the schema migrations (GRDB's migrator records which ran).
    public func migrate() async throws(StoreError) {
        do {
            try SQLiteSchema.migrator.migrate(pool)
        } catch {
            throw .migrationFailed(Self.describe(error))
        }
    }

    /// Succeeds when the database answers.
    public func ping() async throws(StoreError) {
        try await read("ping") { db in _ = try Int.fetchOne(db, sql: "SELECT 1") }
    }

    /// Copies every committed WAL frame into the database file and empties the WAL (SQLite's
    /// TRUNCATE checkpoint; it waits for readers and the writer).
    public func checkpoint() async throws(StoreError) {
        do {
            try await pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        } catch { throw .operationFailed("checkpoint: \(Self.describe(error))") }
    }

    /// Releases connections and files, after a final checkpoint: a stopped server leaves one
    /// complete database file, which a plain copy backs up (docs/operations.md).
    public func close() async {
        await checkpointer.close()
        // If it fails the frames stay in the WAL, which the next open replays: nothing is lost,
        // only the single-file property for that stop.
        try? await checkpoint()
        try? pool.close()
    }

    /// Applies a batch in one durable transaction; returns the accounts whose version check
    /// failed (their rows were not written).
    @discardableResult
    public func commit(_ batch: WriteBatch) async throws(StoreError) -> Set<AccountID> {
        let conflicts = try await write("commit") { db in try SQLiteSchema.apply(batch, in: db) }
        checkpointer.committed()
        return conflicts
    }

    // MARK: Helpers

    func read<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError)
        -> T
    {
        do { return try await pool.read(body) } catch { throw .operationFailed("\(what): \(Self.describe(error))") }
    }

    func write<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError)
        -> T
    {
        do { return try await pool.write(body) } catch { throw .operationFailed("\(what): \(Self.describe(error))") }
    }
}

/// The SQLite schema, its migrations and the batch rules in SQL.
enum SQLiteSchema {
    /// The page size a new database file is created with.
    static let pageSize = 16_384

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE accounts (
                        account BLOB PRIMARY KEY,
                        head_cursor INTEGER NOT NULL DEFAULT 0,
                        stored_bytes INTEGER NOT NULL DEFAULT 0
                    ) WITHOUT ROWID;
                    CREATE TABLE device_log (
                        account BLOB NOT NULL, idx INTEGER NOT NULL, entry BLOB NOT NULL,
                        PRIMARY KEY (account, idx)
                    ) WITHOUT ROWID;
                    CREATE TABLE change_sets (
                        account BLOB NOT NULL, cursor INTEGER NOT NULL,
                        conversation BLOB NOT NULL, author BLOB NOT NULL, seq INTEGER NOT NULL,
                        hash BLOB NOT NULL, body BLOB,
                        PRIMARY KEY (account, cursor)
                    );
                    CREATE UNIQUE INDEX change_sets_by_chain ON change_sets (account, conversation, author, seq);
                    CREATE TABLE chains (
                        account BLOB NOT NULL, conversation BLOB NOT NULL, author BLOB NOT NULL,
                        seq INTEGER NOT NULL, hash BLOB NOT NULL,
                        PRIMARY KEY (account, conversation, author)
                    ) WITHOUT ROWID;
                    CREATE TABLE key_envelopes (
                        account BLOB NOT NULL, recipient BLOB NOT NULL, epoch INTEGER NOT NULL, envelope BLOB NOT NULL,
                        PRIMARY KEY (account, recipient, epoch)
                    ) WITHOUT ROWID;
                    CREATE TABLE snapshots (
                        account BLOB NOT NULL, conversation BLOB NOT NULL, hash BLOB NOT NULL, snapshot BLOB NOT NULL,
                        PRIMARY KEY (account, conversation)
                    );
                    CREATE TABLE recoveries (
                        account BLOB PRIMARY KEY, recovery_key BLOB NOT NULL, blob BLOB NOT NULL
                    );
                    CREATE INDEX recoveries_by_key ON recoveries (recovery_key);
                    CREATE TABLE mailboxes (
                        id BLOB PRIMARY KEY, payload BLOB NOT NULL, expires_at_ms INTEGER NOT NULL
                    );
                    CREATE INDEX mailboxes_by_expiry ON mailboxes (expires_at_ms);
                    CREATE TABLE cursor_acks (
                        account BLOB NOT NULL, device BLOB NOT NULL, cursor INTEGER NOT NULL,
                        PRIMARY KEY (account, device)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v2") { db in
            try db.execute(sql: "ALTER TABLE accounts ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v3") { db in
            try db.execute(sql: "ALTER TABLE accounts ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "ALTER TABLE accounts ADD COLUMN last_write_ms INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v4-recovery-counters") { db in
            // Counted passphrase-recovery guesses (PROTOCOL.md §22): durable before an answer.
            try db.execute(sql: "ALTER TABLE recoveries ADD COLUMN failures INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "ALTER TABLE recoveries ADD COLUMN last_attempt_ms INTEGER NOT NULL DEFAULT 0")
        }
        // Conversation keys sealed to assistants (PROTOCOL.md §29), first write wins per
        // (account, recipient, epoch, conversation) like epoch keys per (account, recipient, epoch).
        migrator.registerMigration("v5-conversation-keys") { db in
            try db.execute(
                sql: """
                    CREATE TABLE conversation_keys (
                        account BLOB NOT NULL, recipient BLOB NOT NULL, epoch INTEGER NOT NULL, conversation BLOB NOT NULL,
                        envelope BLOB NOT NULL,
                        PRIMARY KEY (account, recipient, epoch, conversation)
                    ) WITHOUT ROWID
                    """)
        }
        migrator.registerMigration("v6-recovery-notice") { db in
            // Guesses counted before a successful recovery, kept for devices offline then (§22).
            try db.execute(sql: "ALTER TABLE recoveries ADD COLUMN notice_failures INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "ALTER TABLE recoveries ADD COLUMN notice_at_ms INTEGER NOT NULL DEFAULT 0")
        }
        return migrator
    }

    /// Applies `batch` and returns the accounts whose version check failed.
    static func apply(_ batch: WriteBatch, in db: Database) throws -> Set<AccountID> {
        for entry in batch.logEntries where entry.index == 0 {
            try db.execute(
                sql: "INSERT INTO accounts (account) VALUES (?) ON CONFLICT DO NOTHING", arguments: [Data(entry.account.bytes)])
        }
        var conflicts = Set<AccountID>()
        for (account, check) in batch.accountVersions {
            try db.cachedStatement(sql: "UPDATE accounts SET version = ? WHERE account = ? AND version = ?").execute(
                arguments: [Int64(clamping: check.next), Data(account.bytes), Int64(clamping: check.expected)])
            if db.changesCount == 0 { conflicts.insert(account) }
        }
        let batch = batch.removing(conflicts)
        for entry in batch.logEntries {
            try db.cachedStatement(sql: "INSERT INTO device_log (account, idx, entry) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .execute(arguments: [Data(entry.account.bytes), Int64(clamping: entry.index), Data(entry.bytes)])
        }
        try applyChangeSets(batch.changeSets, at: batch.committedAtMs, in: db)
        try applyReplacements(batch.replacements, in: db)
        try applyRecords(batch, in: db)
        if batch.committedAtMs > 0 {
            // Change sets stamp their accounts above, in the update they need anyway.
            let others = Set(batch.logEntries.map(\.account) + batch.envelopes.map(\.account) + batch.snapshots.map(\.account)
                + batch.recoveries.map(\.account))
            for account in others {
                try db.cachedStatement(sql: "UPDATE accounts SET last_write_ms = max(last_write_ms, ?) WHERE account = ?")
                    .execute(arguments: [Int64(clamping: batch.committedAtMs), account.data])
            }
        }
        return conflicts
    }

    private static func applyChangeSets(_ rows: [WriteBatch.ChangeSetRow], at timeMs: UInt64, in db: Database) throws {
        guard !rows.isEmpty else { return }
        let insert = try db.cachedStatement(
            sql: "INSERT INTO change_sets (account, cursor, conversation, author, seq, hash, body) VALUES (?, ?, ?, ?, ?, ?, ?)")
        var heads: [AccountID: (cursor: UInt64, bytes: Int64)] = [:]
        var chains: [ChainTip: WriteBatch.ChangeSetRow] = [:]
        for row in rows {
            try insert.executeInPlace([
                .id(row.account), .integer(Int64(clamping: row.cursor)), .id(row.chain.conversation),
                .id(row.chain.author), .integer(Int64(clamping: row.seq)), .id(row.hash), .blob(row.bytes),
            ])
            let head = heads[row.account] ?? (0, 0)
            heads[row.account] = (max(head.cursor, row.cursor), head.bytes + Int64(row.bytes.count))
            let tip = ChainTip(account: row.account, chain: row.chain)
            if (chains[tip]?.seq ?? 0) < row.seq { chains[tip] = row }
        }
        let upsert = try db.cachedStatement(
            sql: """
                INSERT INTO chains (account, conversation, author, seq, hash) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (account, conversation, author) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
                WHERE excluded.seq > chains.seq
                """)
        for (tip, row) in chains {
            try upsert.execute(arguments: [
                tip.account.data, tip.chain.conversation.data, tip.chain.author.data, Int64(clamping: row.seq),
                row.hash.data,
            ])
        }
        for (account, head) in heads {
            try db.cachedStatement(
                sql: """
                    UPDATE accounts SET head_cursor = max(head_cursor, ?), stored_bytes = stored_bytes + ?,
                    last_write_ms = max(last_write_ms, ?) WHERE account = ?
                    """
            ).execute(arguments: [Int64(clamping: head.cursor), head.bytes, Int64(clamping: timeMs), account.data])
        }
    }

    /// Each replacement only where the row still has its hash and its bytes (compaction may have
    /// dropped them since); the byte count moves by the difference.
    private static func applyReplacements(_ rows: [WriteBatch.ReplacementRow], in db: Database) throws {
        for row in rows {
            let arguments: StatementArguments = [row.account.data, Int64(clamping: row.cursor), row.hash.data]
            let filter = " WHERE account = ? AND cursor = ? AND hash = ? AND body IS NOT NULL"
            guard let old = try Int64.fetchOne(db, sql: "SELECT length(body) FROM change_sets" + filter, arguments: arguments)
            else { continue }
            try db.execute(sql: "UPDATE change_sets SET body = ?" + filter, arguments: [Data(row.bytes)] + arguments)
            try addBytes(Int64(row.bytes.count) - old, to: row.account, in: db)
        }
    }

    private static func applyRecords(_ batch: WriteBatch, in db: Database) throws {
        for row in batch.envelopes {
            if let conversation = row.conversation {
                try db.execute(
                    sql: """
                        INSERT INTO conversation_keys (account, recipient, epoch, conversation, envelope) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT DO NOTHING
                        """,
                    arguments: [
                        Data(row.account.bytes), Data(row.recipient.bytes), Int64(clamping: row.epoch), Data(conversation.bytes),
                        Data(row.bytes),
                    ])
            } else {
                try db.execute(
                    sql: "INSERT INTO key_envelopes (account, recipient, epoch, envelope) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    arguments: [Data(row.account.bytes), Data(row.recipient.bytes), Int64(clamping: row.epoch), Data(row.bytes)])
            }
            if db.changesCount > 0 { try addBytes(Int64(row.bytes.count), to: row.account, in: db) }
        }
        for row in batch.snapshots {
            let old =
                try Int64.fetchOne(
                    db, sql: "SELECT length(snapshot) FROM snapshots WHERE account = ? AND conversation = ?",
                    arguments: [Data(row.account.bytes), Data(row.conversation.bytes)]) ?? 0
            try db.execute(
                sql: """
                    INSERT INTO snapshots (account, conversation, hash, snapshot) VALUES (?, ?, ?, ?)
                    ON CONFLICT (account, conversation) DO UPDATE SET hash = excluded.hash, snapshot = excluded.snapshot
                    """,
                arguments: [Data(row.account.bytes), Data(row.conversation.bytes), Data(row.hash.bytes), Data(row.bytes)])
            try addBytes(Int64(row.bytes.count) - old, to: row.account, in: db)
        }
        for row in batch.mailboxes {
            try db.execute(
                sql: "INSERT OR REPLACE INTO mailboxes (id, payload, expires_at_ms) VALUES (?, ?, ?)",
                arguments: [Data(row.id), Data(row.payload), Int64(clamping: row.expiresAtMs)])
        }
        for record in batch.recoveries {
            try db.execute(
                sql: """
                    INSERT INTO recoveries (account, recovery_key, blob) VALUES (?, ?, ?)
                    ON CONFLICT (account) DO UPDATE SET recovery_key = excluded.recovery_key, blob = excluded.blob,
                    failures = 0, last_attempt_ms = 0
                    """,
                arguments: [Data(record.account.bytes), Data(record.recoveryKeyID.bytes), Data(record.bytes)])
        }
        for row in batch.recoveryCounters {
            try db.execute(
                sql: """
                    UPDATE recoveries SET failures = ?, last_attempt_ms = ?, notice_failures = ?, notice_at_ms = ?
                    WHERE account = ?
                    """,
                arguments: [
                    Int64(row.failures), Int64(clamping: row.lastAttemptMs), Int64(row.noticeFailures),
                    Int64(clamping: row.noticeAtMs), row.account.data,
                ])
        }
        for ack in batch.cursorAcks {
            try db.execute(
                sql: """
                    INSERT INTO cursor_acks (account, device, cursor) VALUES (?, ?, ?)
                    ON CONFLICT (account, device) DO UPDATE SET cursor = max(cursor, excluded.cursor)
                    """,
                arguments: [Data(ack.account.bytes), Data(ack.device.bytes), Int64(clamping: ack.cursor)])
        }
    }

    static func addBytes(_ bytes: Int64, to account: AccountID, in db: Database) throws {
        try db.cachedStatement(sql: "UPDATE accounts SET stored_bytes = stored_bytes + ? WHERE account = ?")
            .execute(arguments: [bytes, Data(account.bytes)])
    }
}

/// One chain of one account (the key of per-batch chain updates).
struct ChainTip: Hashable {
    var account: AccountID
    var chain: ChainKey
}

extension InPlaceValue {
    /// An identifier or digest, bound from its inline bytes.
    static func id(_ value: some FixedLengthBytes) -> InPlaceValue { .small(value.withUnsafeBytes(SmallBlob.init)) }
}
