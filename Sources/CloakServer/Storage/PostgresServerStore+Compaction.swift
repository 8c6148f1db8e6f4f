public import CloakProtocol
import NIOCore
import PostgresNIO

extension PostgresServerStore {
    /// Account ids in order, for compaction.
    public func accounts(after: AccountID?, limit: Int) async throws(StoreError) -> [AccountID] {
        let result = try await rows(
            "list accounts",
            PG.query("SELECT account FROM accounts WHERE account > $1 ORDER BY account LIMIT $2") {
                $0.append(PG.bytes(after?.bytes ?? []))
                $0.append(Int64(limit))
            })
        let rows = try decodeBytes(result)
        do {
            return try rows.map { bytes throws(ProtocolError) in
                try AccountID(validating: bytes, field: "stored account id")
            }
        } catch { throw .corrupt("list accounts: damaged row: \(error)") }
    }

    /// What compaction needs to know about an account.
    public func compactionInput(_ account: AccountID) async throws(StoreError) -> CompactionInput {
        let key = PG.bytes(account)
        let log = try decodeBytes(
            try await rows("compaction input", PG.query("SELECT entry FROM device_log WHERE account = $1 ORDER BY idx") { $0.append(key) }))
        let ackRows = try await rows(
            "compaction input", PG.query("SELECT device, cursor FROM cursor_acks WHERE account = $1") { $0.append(key) })
        let snapshots = try decodeBytes(
            try await rows(
                "compaction input",
                PG.query("SELECT snapshot FROM snapshots WHERE account = $1 ORDER BY conversation") { $0.append(key) }))
        var acks: [DeviceID: UInt64] = [:]
        do {
            for row in ackRows {
                let (device, cursor) = try row.decode((ByteBuffer, Int64).self)
                acks[try PG.id(device)] = PG.unsigned(cursor)
            }
        } catch { throw .corrupt("cursor acks: \(Self.describe(error))") }
        return CompactionInput(deviceLog: log, acknowledged: acks, newestSnapshots: snapshots)
    }

    /// Drops the bytes of covered, acknowledged change sets of one chain.
    public func dropCovered(account: AccountID, chain: ChainKey, throughSeq: UInt64, belowCursor: UInt64)
        async throws(StoreError) -> (count: Int, bytes: Int64)
    {
        let result = try await rows(
            "compact chain",
            PG.query(
                """
                WITH dropped AS (
                    UPDATE change_sets AS c SET body = NULL
                    FROM (SELECT cursor, length(body) AS size FROM change_sets
                          WHERE account = $1 AND conversation = $2 AND author = $3 AND seq <= $4 AND cursor < $5
                          AND body IS NOT NULL FOR UPDATE) AS old
                    WHERE c.account = $1 AND c.cursor = old.cursor
                    RETURNING old.size),
                totals AS (SELECT count(*)::int8 AS count, coalesce(sum(size), 0)::int8 AS bytes FROM dropped),
                adjusted AS (
                    UPDATE accounts SET stored_bytes = stored_bytes - (SELECT bytes FROM totals) WHERE account = $1)
                SELECT count, bytes FROM totals
                """
            ) {
                $0.append(PG.bytes(account))
                $0.append(PG.bytes(chain.conversation))
                $0.append(PG.bytes(chain.author))
                $0.append(PG.int(throughSeq))
                $0.append(PG.int(belowCursor))
            })
        guard let row = result.first else { return (0, 0) }
        do {
            let (count, bytes) = try row.decode((Int64, Int64).self)
            return (Int(count), bytes)
        } catch { throw .corrupt("compaction totals: \(Self.describe(error))") }
    }

    /// Deletes expired mailboxes.
    public func purgeMailboxes(nowMs: UInt64) async throws(StoreError) -> Int {
        let result = try await rows(
            "purge mailboxes",
            PG.query("WITH gone AS (DELETE FROM mailboxes WHERE expires_at_ms <= $1 RETURNING 1) SELECT count(*)::int8 FROM gone") {
                $0.append(PG.int(nowMs))
            })
        return Int((try? result.first?.decode(Int64.self)) ?? 0)
    }
}
