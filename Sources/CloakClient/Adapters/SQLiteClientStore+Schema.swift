import GRDB

extension SQLiteClientStore {
    /// How long a statement waits for another connection's lock before it fails.
    static let busyTimeoutSeconds: Double = 5

    /// The connection's busy timeout as SQLite reports it, in milliseconds.
    var busyTimeoutMillis: Int { get throws { try queue.read { try Int.fetchOne($0, sql: "PRAGMA busy_timeout") ?? 0 } } }

    /// The local store's schema, one migration per change; a store opened by a newer version
    /// of the app keeps its data.
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
        migrator.registerMigration("v4-claims-incidents") { db in
            // Every signed head claim is kept until it can be checked (two claims for one
            // position with different hashes are a forked view); open incidents and when each
            // device was last heard of feed the sync status.
            try db.execute(sql: """
                DROP TABLE claimed_heads;
                CREATE TABLE claims (
                    conversation BLOB NOT NULL, device BLOB NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
                    claimed_by BLOB NOT NULL, PRIMARY KEY (conversation, device, seq, hash));
                CREATE TABLE incidents (id TEXT PRIMARY KEY, record BLOB NOT NULL);
                CREATE TABLE heard (device BLOB PRIMARY KEY, at INTEGER NOT NULL);
                """)
        }
        migrator.registerMigration("v5-document-bases") { db in
            // The state a conversation started from when this device joined it from a snapshot
            // (§13): its change sets before the snapshot are not here, so a rebuild after a
            // late cut-off (§10) starts from it.
            try db.execute(sql: """
                CREATE TABLE document_bases (
                    conversation BLOB PRIMARY KEY, sealed BLOB NOT NULL, applied_through INTEGER NOT NULL)
                """)
        }
        migrator.registerMigration("v6-outbox-unanswered") { db in
            // Outbox change sets sent in a push whose answer never came: the server may have
            // stored and fanned them out, so they are never re-sealed, not even after a restart
            // (§19).
            try db.execute(sql: "ALTER TABLE outbox ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0")
        }
        return migrator
    }
}
