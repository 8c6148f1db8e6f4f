public import CloakProtocol
import Foundation
import GRDB

extension SQLiteServerStore {
    /// Accounts in id order after `after`, with their sizes.
    public func accountSummaries(after: AccountID?, limit: Int) async throws(StoreError) -> [AccountSummary] {
        try await read("list accounts") { db in
            try Row.fetchAll(
                db, sql: Self.summarySQL + " WHERE account > ? ORDER BY account LIMIT ?",
                arguments: [Data(after?.bytes ?? []), limit]
            ).map { try Self.summary($0, db) }
        }
    }

    /// One account's summary.
    public func accountSummary(_ account: AccountID) async throws(StoreError) -> AccountSummary? {
        try await read("show account") { db in
            try Row.fetchOne(db, sql: Self.summarySQL + " WHERE account = ?", arguments: [account.data]).map {
                try Self.summary($0, db)
            }
        }
    }

    /// Blocks or unblocks an account.
    public func setBlocked(_ account: AccountID, blocked: Bool) async throws(StoreError) -> Bool {
        try await write("block account") { db in
            try db.execute(sql: "UPDATE accounts SET blocked = ? WHERE account = ?", arguments: [blocked, account.data])
            return db.changesCount > 0
        }
    }

    /// Deletes every row of the account, in one transaction.
    public func eraseAccount(_ account: AccountID) async throws(StoreError) -> ErasureReport {
        try await write("erase account") { db in
            var rows: [String: Int] = [:]
            for table in ErasureReport.tables {
                // Table names come from the fixed list above, never from input.
                try db.execute(sql: "DELETE FROM \(table) WHERE account = ?", arguments: [account.data])
                if db.changesCount > 0 { rows[table] = db.changesCount }
            }
            return ErasureReport(rows: rows)
        }
    }

    /// Of `accounts`, those that exist, with their blocked flags.
    public func accessStates(_ accounts: [AccountID]) async throws(StoreError) -> [AccountID: Bool] {
        // One statement per 500 accounts: the server sweeps every cached account every few seconds.
        try await read("account states") { db in
            var out: [AccountID: Bool] = [:]
            var start = 0
            while start < accounts.count {
                let chunk = accounts[start..<min(start + 500, accounts.count)]
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                let arguments = StatementArguments(chunk.map { $0.data })
                for row in try Row.fetchAll(db, sql: "SELECT account, blocked FROM accounts WHERE account IN (\(marks))", arguments: arguments) {
                    out[try Self.id(row[0])] = row[1]
                }
                start += 500
            }
            return out
        }
    }

    /// Totals and the database's size (pages in use, including the freelist).
    public func usage() async throws(StoreError) -> StoreUsage {
        try await read("usage") { db in
            let totals = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(sum(stored_bytes), 0) FROM accounts")
            let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let pageSize = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            return StoreUsage(accounts: totals?[0] ?? 0, storedBytes: totals?[1] ?? 0, databaseBytes: pages * pageSize)
        }
    }

    /// A consistent copy of the whole database in a new file at `path` while the server runs
    /// (SQLite's `VACUUM INTO`: one read transaction, so the copy is one moment of the database,
    /// compacted, with no WAL to go with it). The file must not exist yet.
    public func backup(to path: String) async throws(StoreError) {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw .operationFailed("backup: \(path) exists already; choose a new file name")
        }
        do {
            // Outside a transaction (VACUUM may not run inside one) on a reader: commits go on.
            try await pool.unsafeRead { db in try db.execute(sql: "VACUUM INTO ?", arguments: [path]) }
            // The copy holds what the database holds: readable by its owner only.
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        } catch { throw .operationFailed("backup to \(path): \(Self.describe(error))") }
    }

    private static let summarySQL = """
        SELECT account, stored_bytes, head_cursor, last_write_ms, blocked,
        (SELECT count(*) FROM change_sets AS c WHERE c.account = accounts.account AND c.body IS NOT NULL)
        FROM accounts
        """

    private static func summary(_ row: Row, _ db: Database) throws -> AccountSummary {
        let account: AccountID = try id(row[0])
        let log = try Data.fetchAll(db, sql: "SELECT entry FROM device_log WHERE account = ? ORDER BY idx", arguments: [account.data])
        return AccountSummary(
            account: account, storedBytes: row[1], changeSets: row[5], deviceLog: log.map { [UInt8]($0) },
            headCursor: unsigned(row[2]), lastWriteMs: unsigned(row[3]), blocked: row[4])
    }
}
