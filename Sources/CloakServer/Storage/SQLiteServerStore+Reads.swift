public import CloakProtocol
import Foundation
import GRDB

extension SQLiteServerStore {
    /// The account's state, or nil when it does not exist.
    public func account(_ account: AccountID) async throws(StoreError) -> AccountRecord? {
        try await read("load account") { db in
            let key = Data(account.bytes)
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT head_cursor, stored_bytes, version, blocked FROM accounts WHERE account = ?",
                    arguments: [key])
            else { return nil }
            let log = try Data.fetchAll(db, sql: "SELECT entry FROM device_log WHERE account = ? ORDER BY idx", arguments: [key])
            var chains: [ChainKey: ChainPosition] = [:]
            let chainRows = try Row.fetchCursor(
                db, sql: "SELECT conversation, author, seq, hash FROM chains WHERE account = ?", arguments: [key])
            while let chain = try chainRows.next() {
                let id = ChainKey(
                    conversation: try Self.id(chain[0]), author: try Self.id(chain[1]))
                chains[id] = ChainPosition(seq: Self.unsigned(chain[2]), hash: try Self.id(chain[3]))
            }
            var snapshots: [ConversationID: SnapshotHash] = [:]
            var sizes: [ConversationID: Int64] = [:]
            let sql = "SELECT conversation, hash, length(snapshot) FROM snapshots WHERE account = ?"
            for snapshot in try Row.fetchAll(db, sql: sql, arguments: [key]) {
                let conversation: ConversationID = try Self.id(snapshot[0])
                snapshots[conversation] = try Self.id(snapshot[1])
                sizes[conversation] = snapshot[2]
            }
            return AccountRecord(
                account: account, deviceLog: log.map { [UInt8]($0) }, headCursor: Self.unsigned(row[0]),
                storedBytes: row[1], chains: chains, newestSnapshots: snapshots, snapshotBytes: sizes,
                version: Self.unsigned(row[2]), blocked: row[3], recovery: try Self.recovery(db, .account(account)))
        }
    }

    /// Device-log entries from `fromIndex`, or nil for an unknown account.
    public func deviceLog(_ account: AccountID, fromIndex: UInt64) async throws(StoreError) -> [[UInt8]]? {
        try await read("device log") { db in
            let key = Data(account.bytes)
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM accounts WHERE account = ?", arguments: [key]) != nil else {
                return nil
            }
            return try Data.fetchAll(
                db, sql: "SELECT entry FROM device_log WHERE account = ? AND idx >= ? ORDER BY idx",
                arguments: [key, Int64(clamping: fromIndex)]
            ).map { [UInt8]($0) }
        }
    }

    /// A page of stored change sets in cursor order.
    public func changeSets(_ query: ChangeSetQuery) async throws(StoreError) -> [StoredChangeSet] {
        try await read("catch-up page") { db in
            var sql = "SELECT cursor, body FROM change_sets WHERE account = ? AND cursor > ? AND cursor <= ? AND body IS NOT NULL"
            var arguments: StatementArguments = [
                Data(query.account.bytes), Int64(clamping: query.afterCursor), Int64(clamping: query.throughCursor),
            ]
            if !query.conversations.isEmpty {
                sql += " AND conversation IN (" + Array(repeating: "?", count: query.conversations.count).joined(separator: ",") + ")"
                for conversation in query.conversations.sorted() { arguments += [Data(conversation.bytes)] }
            }
            sql += " ORDER BY cursor LIMIT ?"
            arguments += [query.limit]
            return try Self.page(db, sql: sql, arguments: arguments, maxBytes: query.maxBytes)
        }
    }

    /// A page of stored change sets in cursor order.
    public func changeSets(account: AccountID, chain: ChainKey, seqs: ClosedRange<UInt64>, maxBytes: Int)
        async throws(StoreError) -> [StoredChangeSet]
    {
        try await read("chain range") { db in
            try Self.page(
                db,
                sql: """
                    SELECT cursor, body FROM change_sets
                    WHERE account = ? AND conversation = ? AND author = ? AND seq >= ? AND seq <= ? AND body IS NOT NULL
                    ORDER BY cursor
                    """,
                arguments: [
                    account.data, chain.conversation.data, chain.author.data, Int64(clamping: seqs.lowerBound),
                    Int64(clamping: seqs.upperBound),
                ], maxBytes: maxBytes)
        }
    }

    /// Cursor, hash and bytes of stored change sets at the given positions.
    public func changeSetRefs(account: AccountID, _ positions: [ChainSeq]) async throws(StoreError) -> [ChainSeq:
        StoredChangeSetRef]
    {
        try await read("change-set references") { db in
            let statement = try db.cachedStatement(
                sql: "SELECT cursor, hash, body FROM change_sets WHERE account = ? AND conversation = ? AND author = ? AND seq = ?")
            var out: [ChainSeq: StoredChangeSetRef] = [:]
            for position in positions {
                let arguments: StatementArguments = [
                    account.data, position.chain.conversation.data, position.chain.author.data,
                    Int64(clamping: position.seq),
                ]
                if let row = try Row.fetchOne(statement, arguments: arguments) {
                    let body: DatabaseValue = row[2]
                    out[position] = StoredChangeSetRef(
                        cursor: Self.unsigned(row[0]), hash: try Self.id(row[1]), bytes: body.isNull ? nil : Self.bytes(body))
                }
            }
            return out
        }
    }

    /// The committed head and the hash stored at `cursor`.
    public func cursorAnchor(account: AccountID, cursor: UInt64) async throws(StoreError) -> CursorAnchor {
        try await read("cursor anchor") { db in
            let head = try Int64.fetchOne(db, sql: "SELECT head_cursor FROM accounts WHERE account = ?", arguments: [account.data])
            let hash = try DatabaseValue.fetchOne(
                db, sql: "SELECT hash FROM change_sets WHERE account = ? AND cursor = ?",
                arguments: [account.data, Int64(clamping: cursor)])
            return CursorAnchor(
                headCursor: UInt64(clamping: head ?? 0), hash: try hash.map { value throws(ProtocolError) in try Self.id(value) })
        }
    }

    /// Chains' newest positions in (conversation, author) order after `after`.
    public func chainHeads(account: AccountID, after: ChainKey?, limit: Int) async throws(StoreError) -> [StoredChainHead] {
        try await read("chain heads") { db in
            var sql = "SELECT conversation, author, seq, hash FROM chains WHERE account = ?"
            var arguments: StatementArguments = [account.data]
            if let after {
                // Row values compare column by column, BLOBs byte-wise: the order of ChainKey.
                sql += " AND (conversation, author) > (?, ?)"
                arguments += [after.conversation.data, after.author.data]
            }
            arguments += [limit]
            return try Row.fetchAll(db, sql: sql + " ORDER BY conversation, author LIMIT ?", arguments: arguments).map { row in
                StoredChainHead(
                    chain: ChainKey(conversation: try Self.id(row[0]), author: try Self.id(row[1])),
                    position: ChainPosition(seq: Self.unsigned(row[2]), hash: try Self.id(row[3])))
            }
        }
    }

    /// Key envelopes for a recipient from an epoch on.
    public func keyEnvelopes(account: AccountID, recipient: DeviceID, fromEpoch: UInt64) async throws(StoreError)
        -> [[UInt8]]
    {
        try await read("key envelopes") { db in
            // A device has only epoch keys, an assistant only conversation keys (PROTOCOL.md §29).
            try Data.fetchAll(
                db,
                sql: """
                    SELECT envelope FROM (
                        SELECT epoch, x'' AS conversation, envelope FROM key_envelopes
                        WHERE account = ?1 AND recipient = ?2 AND epoch >= ?3
                        UNION ALL
                        SELECT epoch, conversation, envelope FROM conversation_keys
                        WHERE account = ?1 AND recipient = ?2 AND epoch >= ?3)
                    ORDER BY epoch, conversation
                    """,
                arguments: [Data(account.bytes), Data(recipient.bytes), Int64(clamping: fromEpoch)]
            ).map { [UInt8]($0) }
        }
    }

    /// The newest snapshot of each listed conversation (all when empty).
    public func newestSnapshots(account: AccountID, conversations: [ConversationID]) async throws(StoreError)
        -> [[UInt8]]
    {
        try await read("snapshots") { db in
            var sql = "SELECT snapshot FROM snapshots WHERE account = ?"
            var arguments: StatementArguments = [Data(account.bytes)]
            let wanted = Set(conversations).sorted()
            if !wanted.isEmpty {
                sql += " AND conversation IN (" + Array(repeating: "?", count: wanted.count).joined(separator: ",") + ")"
                for conversation in wanted { arguments += [Data(conversation.bytes)] }
            }
            return try Data.fetchAll(db, sql: sql + " ORDER BY conversation", arguments: arguments).map { [UInt8]($0) }
        }
    }

    /// A recovery blob, by account or recovery key.
    public func recovery(_ lookup: RecoveryLookup) async throws(StoreError) -> RecoveryRecord? {
        try await read("recovery blob") { db in try Self.recovery(db, lookup) }
    }

    static func recovery(_ db: Database, _ lookup: RecoveryLookup) throws -> RecoveryRecord? {
        let columns =
            "SELECT account, recovery_key, blob, failures, last_attempt_ms, notice_failures, notice_at_ms FROM recoveries"
        let row: Row?
        switch lookup {
        case .account(let id):
            row = try Row.fetchOne(db, sql: columns + " WHERE account = ?", arguments: [Data(id.bytes)])
        case .recoveryKey(let key):
            row = try Row.fetchOne(db, sql: columns + " WHERE recovery_key = ? LIMIT 1", arguments: [Data(key.bytes)])
        }
        return try row.map {
            RecoveryRecord(
                account: try Self.id($0[0]), recoveryKeyID: try Self.id($0[1]), bytes: Self.bytes($0[2]),
                failures: UInt32(clamping: $0[3] as Int64), lastAttemptMs: Self.unsigned($0[4]),
                noticeFailures: UInt32(clamping: $0[5] as Int64), noticeAtMs: Self.unsigned($0[6]))
        }
    }

    /// Removes and returns an unexpired mailbox payload.
    public func takeMailbox(_ id: [UInt8], nowMs: UInt64) async throws(StoreError) -> [UInt8]? {
        try await write("take mailbox") { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "DELETE FROM mailboxes WHERE id = ? RETURNING payload, expires_at_ms", arguments: [Data(id)])
            else { return nil }
            return Self.unsigned(row[1]) > nowMs ? Self.bytes(row[0]) : nil
        }
    }

    static func page(_ db: Database, sql: String, arguments: StatementArguments, maxBytes: Int) throws -> [StoredChangeSet] {
        var out: [StoredChangeSet] = []
        var total = 0
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let row = try rows.next() {
            let body = bytes(row[1])
            if !out.isEmpty, total + body.count > maxBytes { break }
            total += body.count
            out.append(StoredChangeSet(cursor: unsigned(row[0]), bytes: body))
        }
        return out
    }

    static func bytes(_ value: DatabaseValue) -> [UInt8] {
        guard let data = Data.fromDatabaseValue(value) else { return [] }
        return [UInt8](data)
    }

    /// A stored identifier or hash; any other length is an error, not a crash.
    static func id<T: FixedLengthBytes>(_ value: DatabaseValue) throws(ProtocolError) -> T {
        try T(validating: bytes(value), field: "stored \(T.self)")
    }

    static func unsigned(_ value: DatabaseValue) -> UInt64 {
        UInt64(clamping: Int64.fromDatabaseValue(value) ?? 0)
    }
}
