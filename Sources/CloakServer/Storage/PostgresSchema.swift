import CloakProtocol
import Logging
import NIOCore
import PostgresNIO

/// The PostgreSQL schema (the SQLite one with PostgreSQL types) and the batch rules as
/// set-based statements.
enum PostgresSchema {
    /// Migrations in order; ids match the SQLite migrator's.
    static let migrations: [(String, [String])] = [
        (
            "v1",
            [
                """
                CREATE TABLE accounts (
                    account BYTEA PRIMARY KEY, head_cursor BIGINT NOT NULL DEFAULT 0, stored_bytes BIGINT NOT NULL DEFAULT 0)
                """,
                """
                CREATE TABLE device_log (
                    account BYTEA NOT NULL, idx BIGINT NOT NULL, entry BYTEA NOT NULL, PRIMARY KEY (account, idx))
                """,
                """
                CREATE TABLE change_sets (
                    account BYTEA NOT NULL, cursor BIGINT NOT NULL, conversation BYTEA NOT NULL, author BYTEA NOT NULL,
                    seq BIGINT NOT NULL, hash BYTEA NOT NULL, body BYTEA, PRIMARY KEY (account, cursor))
                """,
                "CREATE UNIQUE INDEX change_sets_by_chain ON change_sets (account, conversation, author, seq)",
                """
                CREATE TABLE chains (
                    account BYTEA NOT NULL, conversation BYTEA NOT NULL, author BYTEA NOT NULL, seq BIGINT NOT NULL,
                    hash BYTEA NOT NULL, PRIMARY KEY (account, conversation, author))
                """,
                """
                CREATE TABLE key_envelopes (
                    account BYTEA NOT NULL, recipient BYTEA NOT NULL, epoch BIGINT NOT NULL, envelope BYTEA NOT NULL,
                    PRIMARY KEY (account, recipient, epoch))
                """,
                """
                CREATE TABLE snapshots (
                    account BYTEA NOT NULL, conversation BYTEA NOT NULL, hash BYTEA NOT NULL, snapshot BYTEA NOT NULL,
                    PRIMARY KEY (account, conversation))
                """,
                "CREATE TABLE recoveries (account BYTEA PRIMARY KEY, recovery_key BYTEA NOT NULL, blob BYTEA NOT NULL)",
                "CREATE INDEX recoveries_by_key ON recoveries (recovery_key)",
                "CREATE TABLE mailboxes (id BYTEA PRIMARY KEY, payload BYTEA NOT NULL, expires_at_ms BIGINT NOT NULL)",
                "CREATE INDEX mailboxes_by_expiry ON mailboxes (expires_at_ms)",
                """
                CREATE TABLE cursor_acks (
                    account BYTEA NOT NULL, device BYTEA NOT NULL, cursor BIGINT NOT NULL, PRIMARY KEY (account, device))
                """,
            ]
        ),
        ("v2", ["ALTER TABLE accounts ADD COLUMN version BIGINT NOT NULL DEFAULT 0"]),
        (
            "v3",
            [
                "ALTER TABLE accounts ADD COLUMN blocked BOOLEAN NOT NULL DEFAULT false",
                "ALTER TABLE accounts ADD COLUMN last_write_ms BIGINT NOT NULL DEFAULT 0",
            ]
        ),
        (
            // Counted passphrase-recovery guesses (PROTOCOL.md §22): durable before an answer.
            "v4-recovery-counters",
            [
                "ALTER TABLE recoveries ADD COLUMN failures BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE recoveries ADD COLUMN last_attempt_ms BIGINT NOT NULL DEFAULT 0",
            ]
        ),
        (
            // Conversation keys sealed to assistants (PROTOCOL.md §29).
            "v5-conversation-keys",
            [
                """
                CREATE TABLE conversation_keys (
                    account BYTEA NOT NULL, recipient BYTEA NOT NULL, epoch BIGINT NOT NULL, conversation BYTEA NOT NULL,
                    envelope BYTEA NOT NULL, PRIMARY KEY (account, recipient, epoch, conversation))
                """
            ]
        ),
        (
            // Guesses counted before a successful recovery, kept for devices offline then (§22).
            "v6-recovery-notice",
            [
                "ALTER TABLE recoveries ADD COLUMN notice_failures BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE recoveries ADD COLUMN notice_at_ms BIGINT NOT NULL DEFAULT 0",
            ]
        ),
    ]

    /// The channel commits are announced on (payload: the writer's instance id, the account id
    /// in hex and the account's new version, separated by spaces).
    static let commitChannel = "cloak_commits"

    /// Creates the accounts whose genesis entry the batch carries (before the version check,
    /// which then finds them at version 0).
    static func accountCreation(for batch: WriteBatch) -> PostgresQuery? {
        // In one order, like the version lock: two processes creating the same accounts wait
        // for each other instead of deadlocking.
        let created = batch.logEntries.filter { $0.index == 0 }.sorted { $0.account < $1.account }
        guard !created.isEmpty else { return nil }
        return PG.query("INSERT INTO accounts (account) SELECT * FROM UNNEST($1::bytea[]) ON CONFLICT DO NOTHING") {
            $0.append(created.map { PG.bytes($0.account) })
        }
    }

    /// Locks the checked accounts' rows in one order, so two processes' commits never deadlock
    /// on them (run before ``versionUpdate(for:)``).
    static func versionLock(for checks: [AccountID: WriteBatch.VersionCheck]) -> PostgresQuery {
        PG.query("SELECT 1 FROM accounts WHERE account = ANY($1::bytea[]) ORDER BY account FOR UPDATE") {
            $0.append(checks.keys.map { PG.bytes($0) })
        }
    }

    /// Moves the versions that match; returns the accounts it moved.
    static func versionUpdate(for checks: [AccountID: WriteBatch.VersionCheck]) -> PostgresQuery {
        let rows = Array(checks)
        return PG.query(
                """
                UPDATE accounts AS a SET version = v.next
                FROM UNNEST($1::bytea[], $2::int8[], $3::int8[]) AS v(account, expected, next)
                WHERE a.account = v.account AND a.version = v.expected RETURNING a.account
                """
            ) {
                $0.append(rows.map { PG.bytes($0.key) })
                $0.append(rows.map { PG.int($0.value.expected) })
                $0.append(rows.map { PG.int($0.value.next) })
            }
    }

    /// Announces, at commit, that `accounts` changed (NOTIFY is transactional: listeners hear
    /// it only if and after the transaction commits, in commit order).
    static func notification(instance: String, versions: [AccountID: WriteBatch.VersionCheck]) -> PostgresQuery {
        let rows = Array(versions)
        return PG.query(
            """
            SELECT pg_notify('\(commitChannel)', $1 || encode(a, 'hex') || ' ' || v::text)
            FROM UNNEST($2::bytea[], $3::int8[]) AS t(a, v)
            """
        ) {
            $0.append(instance + " ")
            $0.append(rows.map { PG.bytes($0.key) })
            $0.append(rows.map { PG.int($0.value.next) })
        }
    }

    /// The statements of a batch after ``accountCreation(for:)``, in the order the rules need.
    static func statements(for batch: WriteBatch) -> [PostgresQuery] {
        var out: [PostgresQuery] = []
        if !batch.logEntries.isEmpty {
            out.append(
                PG.query(
                    """
                    INSERT INTO device_log (account, idx, entry) SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::bytea[])
                    ON CONFLICT DO NOTHING
                    """
                ) {
                    $0.append(batch.logEntries.map { PG.bytes($0.account) })
                    $0.append(batch.logEntries.map { PG.int($0.index) })
                    $0.append(batch.logEntries.map { PG.bytes($0.bytes) })
                })
        }
        out += changeSetStatements(batch.changeSets, at: batch.committedAtMs)
        if let replace = replacementStatement(batch.replacements) { out.append(replace) }
        out += recordStatements(batch)
        // Change sets stamp their accounts in the update they need anyway.
        let others = Set(batch.logEntries.map(\.account) + batch.envelopes.map(\.account) + batch.snapshots.map(\.account)
            + batch.recoveries.map(\.account))
        if batch.committedAtMs > 0, !others.isEmpty {
            out.append(
                PG.query("UPDATE accounts SET last_write_ms = GREATEST(last_write_ms, $1) WHERE account = ANY($2::bytea[])") {
                    $0.append(PG.int(batch.committedAtMs))
                    $0.append(others.map { PG.bytes($0) })
                })
        }
        return out
    }

    private static func changeSetStatements(_ rows: [WriteBatch.ChangeSetRow], at timeMs: UInt64) -> [PostgresQuery] {
        guard !rows.isEmpty else { return [] }
        var heads: [AccountID: (cursor: UInt64, bytes: Int64)] = [:]
        var tips: [ChainTip: WriteBatch.ChangeSetRow] = [:]
        for row in rows {
            let head = heads[row.account] ?? (0, 0)
            heads[row.account] = (max(head.cursor, row.cursor), head.bytes + Int64(row.bytes.count))
            let tip = ChainTip(account: row.account, chain: row.chain)
            if (tips[tip]?.seq ?? 0) < row.seq { tips[tip] = row }
        }
        let chainRows = Array(tips.values)
        let accountRows = Array(heads)
        return [
            PG.query(
                """
                INSERT INTO change_sets (account, cursor, conversation, author, seq, hash, body)
                SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::bytea[], $4::bytea[], $5::int8[], $6::bytea[], $7::bytea[])
                """
            ) {
                $0.append(rows.map { PG.bytes($0.account) })
                $0.append(rows.map { PG.int($0.cursor) })
                $0.append(rows.map { PG.bytes($0.chain.conversation) })
                $0.append(rows.map { PG.bytes($0.chain.author) })
                $0.append(rows.map { PG.int($0.seq) })
                $0.append(rows.map { PG.bytes($0.hash) })
                $0.append(rows.map { PG.bytes($0.bytes) })
            },
            PG.query(
                """
                INSERT INTO chains (account, conversation, author, seq, hash)
                SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::int8[], $5::bytea[])
                ON CONFLICT (account, conversation, author) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash
                WHERE EXCLUDED.seq > chains.seq
                """
            ) {
                $0.append(chainRows.map { PG.bytes($0.account) })
                $0.append(chainRows.map { PG.bytes($0.chain.conversation) })
                $0.append(chainRows.map { PG.bytes($0.chain.author) })
                $0.append(chainRows.map { PG.int($0.seq) })
                $0.append(chainRows.map { PG.bytes($0.hash) })
            },
            PG.query(
                """
                UPDATE accounts AS a SET head_cursor = GREATEST(a.head_cursor, v.head), stored_bytes = a.stored_bytes + v.bytes,
                last_write_ms = GREATEST(a.last_write_ms, $4)
                FROM UNNEST($1::bytea[], $2::int8[], $3::int8[]) AS v(account, head, bytes) WHERE a.account = v.account
                """
            ) {
                $0.append(accountRows.map { PG.bytes($0.key) })
                $0.append(accountRows.map { PG.int($0.value.cursor) })
                $0.append(accountRows.map { $0.value.bytes })
                $0.append(PG.int(timeMs))
            },
        ]
    }

    /// Replaces stored bytes where the row still has the hash and was not compacted, and moves
    /// the accounts' byte counts by the differences (one replacement per cursor: the last wins).
    private static func replacementStatement(_ rows: [WriteBatch.ReplacementRow]) -> PostgresQuery? {
        guard !rows.isEmpty else { return nil }
        var byCursor: [AccountCursor: WriteBatch.ReplacementRow] = [:]
        for row in rows { byCursor[AccountCursor(account: row.account, cursor: row.cursor)] = row }
        let unique = Array(byCursor.values)
        return PG.query(
            """
            WITH old AS (
                SELECT c.account, c.cursor, length(c.body)::int8 AS size, r.body
                FROM change_sets AS c JOIN UNNEST($1::bytea[], $2::int8[], $3::bytea[], $4::bytea[]) AS r(account, cursor, hash, body)
                ON c.account = r.account AND c.cursor = r.cursor AND c.hash = r.hash AND c.body IS NOT NULL
                FOR UPDATE OF c),
            replaced AS (
                UPDATE change_sets AS c SET body = old.body FROM old WHERE c.account = old.account AND c.cursor = old.cursor
                RETURNING old.account, length(old.body)::int8 - old.size AS growth)
            UPDATE accounts AS a SET stored_bytes = a.stored_bytes + g.total
            FROM (SELECT account, sum(growth)::int8 AS total FROM replaced GROUP BY account) AS g WHERE a.account = g.account
            """
        ) {
            $0.append(unique.map { PG.bytes($0.account) })
            $0.append(unique.map { PG.int($0.cursor) })
            $0.append(unique.map { PG.bytes($0.hash) })
            $0.append(unique.map { PG.bytes($0.bytes) })
        }
    }

    /// One cursor of one account.
    private struct AccountCursor: Hashable {
        var account: AccountID
        var cursor: UInt64
    }

    private static func recordStatements(_ batch: WriteBatch) -> [PostgresQuery] {
        var out: [PostgresQuery] = []
        let envelopes = batch.envelopes.filter { $0.conversation == nil }
        let conversationKeys = batch.envelopes.filter { $0.conversation != nil }
        if !conversationKeys.isEmpty {
            // Conversation keys sealed to assistants (PROTOCOL.md §29).
            out.append(
                PG.query(
                    """
                    WITH inserted AS (
                        INSERT INTO conversation_keys (account, recipient, epoch, conversation, envelope)
                        SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::int8[], $4::bytea[], $5::bytea[])
                        ON CONFLICT DO NOTHING RETURNING account, length(envelope) AS size)
                    UPDATE accounts AS a SET stored_bytes = a.stored_bytes + s.total
                    FROM (SELECT account, sum(size)::int8 AS total FROM inserted GROUP BY account) AS s
                    WHERE a.account = s.account
                    """
                ) {
                    $0.append(conversationKeys.map { PG.bytes($0.account) })
                    $0.append(conversationKeys.map { PG.bytes($0.recipient) })
                    $0.append(conversationKeys.map { PG.int($0.epoch) })
                    $0.append(conversationKeys.map { PG.bytes($0.conversation ?? .library) })
                    $0.append(conversationKeys.map { PG.bytes($0.bytes) })
                })
        }
        if !envelopes.isEmpty {
            out.append(
                PG.query(
                    """
                    WITH inserted AS (
                        INSERT INTO key_envelopes (account, recipient, epoch, envelope)
                        SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::int8[], $4::bytea[])
                        ON CONFLICT DO NOTHING RETURNING account, length(envelope) AS size)
                    UPDATE accounts AS a SET stored_bytes = a.stored_bytes + s.total
                    FROM (SELECT account, sum(size)::int8 AS total FROM inserted GROUP BY account) AS s
                    WHERE a.account = s.account
                    """
                ) {
                    $0.append(envelopes.map { PG.bytes($0.account) })
                    $0.append(envelopes.map { PG.bytes($0.recipient) })
                    $0.append(envelopes.map { PG.int($0.epoch) })
                    $0.append(envelopes.map { PG.bytes($0.bytes) })
                })
        }
        for row in batch.mailboxes {
            out.append(
                PG.query(
                    """
                    INSERT INTO mailboxes (id, payload, expires_at_ms) VALUES ($1, $2, $3)
                    ON CONFLICT (id) DO UPDATE SET payload = EXCLUDED.payload, expires_at_ms = EXCLUDED.expires_at_ms
                    """
                ) {
                    $0.append(PG.bytes(row.id))
                    $0.append(PG.bytes(row.payload))
                    $0.append(PG.int(row.expiresAtMs))
                })
        }
        for record in batch.recoveries {
            out.append(
                PG.query(
                    """
                    INSERT INTO recoveries (account, recovery_key, blob) VALUES ($1, $2, $3)
                    ON CONFLICT (account) DO UPDATE SET recovery_key = EXCLUDED.recovery_key, blob = EXCLUDED.blob,
                    failures = 0, last_attempt_ms = 0
                    """
                ) {
                    $0.append(PG.bytes(record.account))
                    $0.append(PG.bytes(record.recoveryKeyID))
                    $0.append(PG.bytes(record.bytes))
                })
        }
        for row in batch.recoveryCounters {
            out.append(
                PG.query(
                    """
                    UPDATE recoveries SET failures = $1, last_attempt_ms = $2, notice_failures = $3, notice_at_ms = $4
                    WHERE account = $5
                    """
                ) {
                    $0.append(Int64(row.failures))
                    $0.append(PG.int(row.lastAttemptMs))
                    $0.append(Int64(row.noticeFailures))
                    $0.append(PG.int(row.noticeAtMs))
                    $0.append(PG.bytes(row.account))
                })
        }
        for ack in batch.cursorAcks {
            out.append(
                PG.query(
                    """
                    INSERT INTO cursor_acks (account, device, cursor) VALUES ($1, $2, $3)
                    ON CONFLICT (account, device) DO UPDATE SET cursor = GREATEST(cursor_acks.cursor, EXCLUDED.cursor)
                    """
                ) {
                    $0.append(PG.bytes(ack.account))
                    $0.append(PG.bytes(ack.device))
                    $0.append(PG.int(ack.cursor))
                })
        }
        return out
    }

    /// Replaces a conversation's snapshot, moving the byte count by the size difference.
    static func putSnapshot(_ row: WriteBatch.SnapshotRow, on connection: PostgresConnection, logger: Logger)
        async throws
    {
        let old = try await connection.query(
            PG.query("SELECT length(snapshot)::int8 FROM snapshots WHERE account = $1 AND conversation = $2") {
                $0.append(PG.bytes(row.account))
                $0.append(PG.bytes(row.conversation))
            }, logger: logger
        ).collect().first?.decode(Int64.self) ?? 0
        try await connection.query(
            PG.query(
                """
                INSERT INTO snapshots (account, conversation, hash, snapshot) VALUES ($1, $2, $3, $4)
                ON CONFLICT (account, conversation) DO UPDATE SET hash = EXCLUDED.hash, snapshot = EXCLUDED.snapshot
                """
            ) {
                $0.append(PG.bytes(row.account))
                $0.append(PG.bytes(row.conversation))
                $0.append(PG.bytes(row.hash))
                $0.append(PG.bytes(row.bytes))
            }, logger: logger)
        try await connection.query(
            PG.query("UPDATE accounts SET stored_bytes = stored_bytes + $1 WHERE account = $2") {
                $0.append(Int64(row.bytes.count) - old)
                $0.append(PG.bytes(row.account))
            }, logger: logger)
    }
}
