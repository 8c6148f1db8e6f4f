public import CloakProtocol
import Foundation
import GRDB

extension SQLiteServerStore {
    /// Account ids in order, for compaction.
    public func accounts(after: AccountID?, limit: Int) async throws(StoreError) -> [AccountID] {
        try await read("list accounts") { db in
            try Data.fetchAll(
                db, sql: "SELECT account FROM accounts WHERE account > ? ORDER BY account LIMIT ?",
                arguments: [Data(after?.bytes ?? []), limit]
            ).map { try AccountID(validating: $0, field: "stored id") }
        }
    }

    /// What compaction needs to know about an account.
    public func compactionInput(_ account: AccountID) async throws(StoreError) -> CompactionInput {
        try await read("compaction input") { db in
            let key = Data(account.bytes)
            let log = try Data.fetchAll(db, sql: "SELECT entry FROM device_log WHERE account = ? ORDER BY idx", arguments: [key])
            var acks: [DeviceID: UInt64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT device, cursor FROM cursor_acks WHERE account = ?", arguments: [key]) {
                acks[try Self.id(row[0])] = Self.unsigned(row[1])
            }
            let snapshots = try Data.fetchAll(
                db, sql: "SELECT snapshot FROM snapshots WHERE account = ? ORDER BY conversation", arguments: [key])
            return CompactionInput(
                deviceLog: log.map { [UInt8]($0) }, acknowledged: acks, newestSnapshots: snapshots.map { [UInt8]($0) })
        }
    }

    /// Drops the bytes of covered, acknowledged change sets of one chain.
    public func dropCovered(account: AccountID, chain: ChainKey, throughSeq: UInt64, belowCursor: UInt64)
        async throws(StoreError) -> (count: Int, bytes: Int64)
    {
        let result: [Int64] = try await write("compact chain") { db in
            let arguments: StatementArguments = [
                Data(account.bytes), Data(chain.conversation.bytes), Data(chain.author.bytes), Int64(clamping: throughSeq),
                Int64(clamping: belowCursor),
            ]
            let filter = """
                WHERE account = ? AND conversation = ? AND author = ? AND seq <= ? AND cursor < ? AND body IS NOT NULL
                """
            guard let totals = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(sum(length(body)), 0) FROM change_sets " + filter, arguments: arguments)
            else { return [0, 0] }
            let count: Int64 = totals[0]
            let bytes: Int64 = totals[1]
            guard count > 0 else { return [0, 0] }
            try db.execute(sql: "UPDATE change_sets SET body = NULL " + filter, arguments: arguments)
            try SQLiteSchema.addBytes(-bytes, to: account, in: db)
            return [count, bytes]
        }
        return (Int(result[0]), result[1])
    }

    /// Deletes expired mailboxes.
    public func purgeMailboxes(nowMs: UInt64) async throws(StoreError) -> Int {
        try await write("purge mailboxes") { db in
            try db.execute(sql: "DELETE FROM mailboxes WHERE expires_at_ms <= ?", arguments: [Int64(clamping: nowMs)])
            return db.changesCount
        }
    }
}
