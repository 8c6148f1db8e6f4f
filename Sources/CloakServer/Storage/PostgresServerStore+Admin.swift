public import CloakProtocol
import NIOCore
import PostgresNIO

extension PostgresServerStore {
    /// Accounts in id order after `after`, with their sizes.
    public func accountSummaries(after: AccountID?, limit: Int) async throws(StoreError) -> [AccountSummary] {
        let result = try await rows(
            "list accounts",
            PG.query(Self.summarySQL + " WHERE a.account > $1 ORDER BY a.account LIMIT $2") {
                $0.append(PG.bytes(after?.bytes ?? []))
                $0.append(Int64(limit))
            })
        return try await summaries(result)
    }

    /// One account's summary.
    public func accountSummary(_ account: AccountID) async throws(StoreError) -> AccountSummary? {
        let result = try await rows(
            "show account", PG.query(Self.summarySQL + " WHERE a.account = $1") { $0.append(PG.bytes(account)) })
        return try await summaries(result).first
    }

    /// Blocks or unblocks an account.
    public func setBlocked(_ account: AccountID, blocked: Bool) async throws(StoreError) -> Bool {
        let result = try await rows(
            "block account",
            PG.query("UPDATE accounts SET blocked = $1 WHERE account = $2 RETURNING 1") {
                $0.append(blocked)
                $0.append(PG.bytes(account))
            })
        return !result.isEmpty
    }

    /// Deletes every row of the account, in one transaction.
    public func eraseAccount(_ account: AccountID) async throws(StoreError) -> ErasureReport {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                var rows: [String: Int] = [:]
                for table in ErasureReport.tables {
                    // Table names come from the fixed list, never from input.
                    let counted = try await connection.query(
                        PG.query("WITH gone AS (DELETE FROM \(table) WHERE account = $1 RETURNING 1) SELECT count(*)::int8 FROM gone") {
                            $0.append(PG.bytes(account))
                        }, logger: self.logger
                    ).collect()
                    let count = try counted.first?.decode(Int64.self) ?? 0
                    if count > 0 { rows[table] = Int(count) }
                }
                return ErasureReport(rows: rows)
            }
        } catch { throw .operationFailed("erase account: \(Self.describe(error))") }
    }

    /// Of `accounts`, those that exist, with their blocked flags.
    public func accessStates(_ accounts: [AccountID]) async throws(StoreError) -> [AccountID: Bool] {
        guard !accounts.isEmpty else { return [:] }
        let result = try await rows(
            "account states",
            PG.query("SELECT account, blocked FROM accounts WHERE account = ANY($1::bytea[])") {
                $0.append(accounts.map { PG.bytes($0) })
            })
        do {
            var out: [AccountID: Bool] = [:]
            for row in result {
                let (account, blocked) = try row.decode((ByteBuffer, Bool).self)
                out[try PG.id(account)] = blocked
            }
            return out
        } catch { throw .corrupt("account states: \(Self.describe(error))") }
    }

    /// Totals and the database's size.
    public func usage() async throws(StoreError) -> StoreUsage {
        let result = try await rows(
            "usage",
            PG.query(
                "SELECT count(*)::int8, coalesce(sum(stored_bytes), 0)::int8, pg_database_size(current_database())::int8 FROM accounts"
            ) { _ in })
        do {
            guard let row = result.first else { return StoreUsage(accounts: 0, storedBytes: 0, databaseBytes: 0) }
            let (accounts, stored, size) = try row.decode((Int64, Int64, Int64).self)
            return StoreUsage(accounts: Int(accounts), storedBytes: stored, databaseBytes: size)
        } catch { throw .corrupt("usage: \(Self.describe(error))") }
    }

    private static let summarySQL = """
        SELECT a.account, a.stored_bytes, a.head_cursor, a.last_write_ms, a.blocked,
        (SELECT count(*) FROM change_sets AS c WHERE c.account = a.account AND c.body IS NOT NULL)::int8
        FROM accounts AS a
        """

    private func summaries(_ result: [PostgresRow]) async throws(StoreError) -> [AccountSummary] {
        var out: [AccountSummary] = []
        do {
            for row in result {
                let (id, stored, head, lastWrite, blocked, changeSets) = try row.decode(
                    (ByteBuffer, Int64, Int64, Int64, Bool, Int64).self)
                let account: AccountID = try PG.id(id)
                out.append(
                    AccountSummary(
                        account: account, storedBytes: stored, changeSets: Int(changeSets), deviceLog: [],
                        headCursor: PG.unsigned(head), lastWriteMs: PG.unsigned(lastWrite), blocked: blocked))
            }
        } catch { throw .corrupt("account summary: \(Self.describe(error))") }
        for index in out.indices {
            out[index].deviceLog = try await deviceLog(out[index].account, fromIndex: 0) ?? []
        }
        return out
    }
}
