public import CloakProtocol
import NIOCore
import PostgresNIO

extension PostgresServerStore {
    /// The account's state, or nil when it does not exist. Read in one REPEATABLE READ
    /// transaction: another server process may commit meanwhile, and the head, version, log,
    /// chains and snapshots must all be from one moment.
    public func account(_ account: AccountID) async throws(StoreError) -> AccountRecord? {
        let key = PG.bytes(account)
        let read: (
            head: [PostgresRow], log: [PostgresRow], chains: [PostgresRow], snapshots: [PostgresRow], recovery: [PostgresRow]
        )?
        do {
            read = try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: self.logger)
                func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
                    try await connection.query(query, logger: self.logger).collect()
                }
                let head = try await rows(
                    PG.query("SELECT head_cursor, stored_bytes, version, blocked FROM accounts WHERE account = $1") {
                        $0.append(key)
                    })
                guard !head.isEmpty else { return nil }
                return (
                    head,
                    try await rows(PG.query("SELECT entry FROM device_log WHERE account = $1 ORDER BY idx") { $0.append(key) }),
                    try await rows(
                        PG.query("SELECT conversation, author, seq, hash FROM chains WHERE account = $1") { $0.append(key) }),
                    try await rows(
                        PG.query("SELECT conversation, hash, length(snapshot)::int8 FROM snapshots WHERE account = $1") {
                            $0.append(key)
                        }),
                    try await rows(PG.query(Self.recoveryColumns + " WHERE account = $1") { $0.append(key) })
                )
            }
        } catch {
            throw .operationFailed("load account: \(Self.describe(error))")
        }
        guard let read, let first = read.head.first else { return nil }
        do {
            let (cursor, bytes, version, blocked) = try first.decode((Int64, Int64, Int64, Bool).self)
            var chains: [ChainKey: ChainPosition] = [:]
            for row in read.chains {
                let (conversation, author, seq, hash) = try row.decode((ByteBuffer, ByteBuffer, Int64, ByteBuffer).self)
                chains[ChainKey(conversation: try PG.id(conversation), author: try PG.id(author))] =
                    ChainPosition(seq: PG.unsigned(seq), hash: try PG.id(hash))
            }
            var snapshots: [ConversationID: SnapshotHash] = [:]
            var sizes: [ConversationID: Int64] = [:]
            for row in read.snapshots {
                let (conversation, hash, size) = try row.decode((ByteBuffer, ByteBuffer, Int64).self)
                let id: ConversationID = try PG.id(conversation)
                snapshots[id] = try PG.id(hash)
                sizes[id] = size
            }
            return AccountRecord(
                account: account, deviceLog: try read.log.map { PG.array(try $0.decode(ByteBuffer.self)) },
                headCursor: PG.unsigned(cursor), storedBytes: bytes, chains: chains, newestSnapshots: snapshots,
                snapshotBytes: sizes, version: PG.unsigned(version), blocked: blocked,
                recovery: try read.recovery.first.map(Self.recoveryRecord))
        } catch {
            throw .corrupt("account row: \(Self.describe(error))")
        }
    }

    /// Device-log entries from `fromIndex`, or nil for an unknown account.
    public func deviceLog(_ account: AccountID, fromIndex: UInt64) async throws(StoreError) -> [[UInt8]]? {
        let key = PG.bytes(account)
        guard !(try await rows("device log", PG.query("SELECT 1 FROM accounts WHERE account = $1") { $0.append(key) })).isEmpty
        else { return nil }
        let entries = try await rows(
            "device log",
            PG.query("SELECT entry FROM device_log WHERE account = $1 AND idx >= $2 ORDER BY idx") {
                $0.append(key)
                $0.append(PG.int(fromIndex))
            })
        return try decodeBytes(entries)
    }

    /// A page of stored change sets in cursor order.
    public func changeSets(_ query: ChangeSetQuery) async throws(StoreError) -> [StoredChangeSet] {
        var sql = """
            SELECT cursor, body FROM change_sets
            WHERE account = $1 AND cursor > $2 AND cursor <= $3 AND body IS NOT NULL
            """
        if !query.conversations.isEmpty { sql += " AND conversation = ANY($5::bytea[])" }
        sql += " ORDER BY cursor LIMIT $4"
        let result = try await rows(
            "catch-up page",
            PG.query(sql) {
                $0.append(PG.bytes(query.account))
                $0.append(PG.int(query.afterCursor))
                $0.append(PG.int(query.throughCursor))
                $0.append(Int64(query.limit))
                if !query.conversations.isEmpty { $0.append(query.conversations.sorted().map { PG.bytes($0) }) }
            })
        return try page(result, maxBytes: query.maxBytes)
    }

    /// A page of stored change sets in cursor order.
    public func changeSets(account: AccountID, chain: ChainKey, seqs: ClosedRange<UInt64>, maxBytes: Int)
        async throws(StoreError) -> [StoredChangeSet]
    {
        let result = try await rows(
            "chain range",
            PG.query(
                """
                SELECT cursor, body FROM change_sets
                WHERE account = $1 AND conversation = $2 AND author = $3 AND seq >= $4 AND seq <= $5 AND body IS NOT NULL
                ORDER BY cursor
                """
            ) {
                $0.append(PG.bytes(account))
                $0.append(PG.bytes(chain.conversation))
                $0.append(PG.bytes(chain.author))
                $0.append(PG.int(seqs.lowerBound))
                $0.append(PG.int(seqs.upperBound))
            })
        return try page(result, maxBytes: maxBytes)
    }

    /// Cursor and hash of stored change sets at the given positions.
    public func changeSetRefs(account: AccountID, _ positions: [ChainSeq]) async throws(StoreError) -> [ChainSeq:
        StoredChangeSetRef]
    {
        guard !positions.isEmpty else { return [:] }
        let result = try await rows(
            "change-set references",
            PG.query(
                """
                SELECT c.conversation, c.author, c.seq, c.cursor, c.hash, c.body
                FROM change_sets AS c JOIN UNNEST($2::bytea[], $3::bytea[], $4::int8[]) AS p(conversation, author, seq)
                ON c.account = $1 AND c.conversation = p.conversation AND c.author = p.author AND c.seq = p.seq
                """
            ) {
                $0.append(PG.bytes(account))
                $0.append(positions.map { PG.bytes($0.chain.conversation) })
                $0.append(positions.map { PG.bytes($0.chain.author) })
                $0.append(positions.map { PG.int($0.seq) })
            })
        do {
            var out: [ChainSeq: StoredChangeSetRef] = [:]
            for row in result {
                let (conversation, author, seq, cursor, hash, body) = try row.decode(
                    (ByteBuffer, ByteBuffer, Int64, Int64, ByteBuffer, ByteBuffer?).self)
                let chain = ChainKey(
                    conversation: try PG.id(conversation), author: try PG.id(author))
                out[ChainSeq(chain: chain, seq: PG.unsigned(seq))] = StoredChangeSetRef(
                    cursor: PG.unsigned(cursor), hash: try PG.id(hash), bytes: body.map(PG.array))
            }
            return out
        } catch { throw .corrupt("change-set references: \(Self.describe(error))") }
    }

    /// The committed head and the hash stored at `cursor`.
    public func cursorAnchor(account: AccountID, cursor: UInt64) async throws(StoreError) -> CursorAnchor {
        let result = try await rows(
            "cursor anchor",
            PG.query(
                """
                SELECT a.head_cursor, (SELECT c.hash FROM change_sets AS c WHERE c.account = $1 AND c.cursor = $2)
                FROM accounts AS a WHERE a.account = $1
                """
            ) {
                $0.append(PG.bytes(account))
                $0.append(PG.int(cursor))
            })
        guard let row = result.first else { return CursorAnchor(headCursor: 0, hash: nil) }
        do {
            let (head, hash) = try row.decode((Int64, ByteBuffer?).self)
            let stored: ChangeSetHash? = try hash.map { buffer throws(ProtocolError) in try PG.id(buffer) }
            return CursorAnchor(headCursor: PG.unsigned(head), hash: stored)
        } catch { throw .corrupt("cursor anchor: \(Self.describe(error))") }
    }

    /// Chains' newest positions in (conversation, author) order after `after`.
    public func chainHeads(account: AccountID, after: ChainKey?, limit: Int) async throws(StoreError) -> [StoredChainHead] {
        // bytea compares byte-wise and row values column by column: the order of ChainKey. The
        // empty pair sorts before every 16-byte id, so "from the start" is the same query.
        let result = try await rows(
            "chain heads",
            PG.query(
                """
                SELECT conversation, author, seq, hash FROM chains
                WHERE account = $1 AND (conversation, author) > ($2, $3) ORDER BY conversation, author LIMIT $4
                """
            ) {
                $0.append(PG.bytes(account))
                $0.append(PG.bytes(after?.conversation.bytes ?? []))
                $0.append(PG.bytes(after?.author.bytes ?? []))
                $0.append(Int64(limit))
            })
        do {
            return try result.map { row in
                let (conversation, author, seq, hash) = try row.decode((ByteBuffer, ByteBuffer, Int64, ByteBuffer).self)
                return StoredChainHead(
                    chain: ChainKey(conversation: try PG.id(conversation), author: try PG.id(author)),
                    position: ChainPosition(seq: PG.unsigned(seq), hash: try PG.id(hash)))
            }
        } catch { throw .corrupt("chain heads: \(Self.describe(error))") }
    }

    /// Key envelopes for a recipient from an epoch on.
    public func keyEnvelopes(account: AccountID, recipient: DeviceID, fromEpoch: UInt64) async throws(StoreError)
        -> [[UInt8]]
    {
        try decodeBytes(
            try await rows(
                "key envelopes",
                // A device has only epoch keys, an assistant only conversation keys (PROTOCOL.md §29).
                PG.query(
                    """
                    SELECT envelope FROM (
                        SELECT epoch, ''::bytea AS conversation, envelope FROM key_envelopes
                        WHERE account = $1 AND recipient = $2 AND epoch >= $3
                        UNION ALL
                        SELECT epoch, conversation, envelope FROM conversation_keys
                        WHERE account = $1 AND recipient = $2 AND epoch >= $3) AS both_kinds
                    ORDER BY epoch, conversation
                    """
                ) {
                    $0.append(PG.bytes(account))
                    $0.append(PG.bytes(recipient))
                    $0.append(PG.int(fromEpoch))
                }))
    }

    /// The newest snapshot of each listed conversation (all when empty).
    public func newestSnapshots(account: AccountID, conversations: [ConversationID]) async throws(StoreError)
        -> [[UInt8]]
    {
        let wanted = Set(conversations).sorted()
        let filter = wanted.isEmpty ? "" : " AND conversation = ANY($2::bytea[])"
        return try decodeBytes(
            try await rows(
                "snapshots",
                PG.query("SELECT snapshot FROM snapshots WHERE account = $1" + filter + " ORDER BY conversation") {
                    $0.append(PG.bytes(account))
                    if !wanted.isEmpty { $0.append(wanted.map { PG.bytes($0) }) }
                }))
    }

    /// A recovery blob, by account or recovery key.
    public func recovery(_ lookup: RecoveryLookup) async throws(StoreError) -> RecoveryRecord? {
        let query: PostgresQuery
        switch lookup {
        case .account(let id):
            query = PG.query(Self.recoveryColumns + " WHERE account = $1") { $0.append(PG.bytes(id)) }
        case .recoveryKey(let key):
            query = PG.query(Self.recoveryColumns + " WHERE recovery_key = $1 LIMIT 1") { $0.append(PG.bytes(key)) }
        }
        guard let row = try await rows("recovery blob", query).first else { return nil }
        do { return try Self.recoveryRecord(row) } catch { throw .corrupt("recovery blob: \(Self.describe(error))") }
    }

    static let recoveryColumns =
        "SELECT account, recovery_key, blob, failures, last_attempt_ms, notice_failures, notice_at_ms FROM recoveries"

    static func recoveryRecord(_ row: PostgresRow) throws -> RecoveryRecord {
        let (account, key, blob, failures, last, noticeFailures, noticeAt) =
            try row.decode((ByteBuffer, ByteBuffer, ByteBuffer, Int64, Int64, Int64, Int64).self)
        return RecoveryRecord(
            account: try PG.id(account), recoveryKeyID: try PG.id(key), bytes: PG.array(blob),
            failures: UInt32(clamping: failures), lastAttemptMs: PG.unsigned(last),
            noticeFailures: UInt32(clamping: noticeFailures), noticeAtMs: PG.unsigned(noticeAt))
    }

    /// Removes and returns an unexpired mailbox payload.
    public func takeMailbox(_ id: [UInt8], nowMs: UInt64) async throws(StoreError) -> [UInt8]? {
        let result = try await rows(
            "take mailbox",
            PG.query("DELETE FROM mailboxes WHERE id = $1 RETURNING payload, expires_at_ms") { $0.append(PG.bytes(id)) })
        guard let row = result.first else { return nil }
        do {
            let (payload, expires) = try row.decode((ByteBuffer, Int64).self)
            return PG.unsigned(expires) > nowMs ? PG.array(payload) : nil
        } catch { throw .corrupt("mailbox: \(Self.describe(error))") }
    }

    func page(_ rows: [PostgresRow], maxBytes: Int) throws(StoreError) -> [StoredChangeSet] {
        var out: [StoredChangeSet] = []
        var total = 0
        do {
            for row in rows {
                let (cursor, body) = try row.decode((Int64, ByteBuffer).self)
                if !out.isEmpty, total + body.readableBytes > maxBytes { break }
                total += body.readableBytes
                out.append(StoredChangeSet(cursor: PG.unsigned(cursor), bytes: PG.array(body)))
            }
        } catch { throw .corrupt("change set row: \(Self.describe(error))") }
        return out
    }

    func decodeBytes(_ rows: [PostgresRow]) throws(StoreError) -> [[UInt8]] {
        do { return try rows.map { PG.array(try $0.decode(ByteBuffer.self)) } } catch {
            throw .corrupt("row: \(Self.describe(error))")
        }
    }
}
