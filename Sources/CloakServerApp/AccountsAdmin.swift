public import CloakProtocol
public import CloakServer
import CloakCrypto
import Foundation

/// `cloak-server accounts list|show|delete|block|unblock`: what the operator sees of accounts
/// (sizes, counts, times, never content) and the actions on them, as text for a terminal.
///
/// ```swift
/// print(try await AccountsAdmin.list(store, after: nil, limit: 100))
/// print(try await AccountsAdmin.erase(store, try AccountsAdmin.account("9f2c…")))
/// ```
public enum AccountsAdmin {
    /// The account an operator typed: 64 hexadecimal digits.
    public static func account(_ text: String) throws(ConfigurationError) -> AccountID {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard trimmed.count == 2 * AccountID.byteCount, let bytes = try? Hex.decode(trimmed) else {
            throw ConfigurationError([
                "\"\(text)\" is not an account id; an account id is 64 hexadecimal digits (cloak-server accounts list shows them)."
            ])
        }
        return AccountID(unchecked: bytes)
    }

    /// One line per account, after a header: id, devices, change sets, stored bytes, last
    /// write, blocked. Ends with a hint when more follow.
    public static func list(_ store: any ServerStore, after: AccountID?, limit: Int) async throws(StoreError) -> String {
        let page = try await store.accountSummaries(after: after, limit: limit + 1)
        var lines = [pad(["ACCOUNT", "DEVICES", "CHANGE SETS", "STORED", "LAST WRITE", "STATE"])]
        for summary in page.prefix(limit) {
            lines.append(
                pad([
                    Hex.encode(summary.account.bytes), "\(devices(summary))", "\(summary.changeSets)",
                    ByteCount(summary.storedBytes).description, date(summary.lastWriteMs), summary.blocked ? "blocked" : "active",
                ]))
        }
        if page.count > limit, let last = page.prefix(limit).last {
            lines.append("(more follow: cloak-server accounts list --after \(Hex.encode(last.account.bytes)))")
        }
        if page.isEmpty { lines.append("(no accounts)") }
        return lines.joined(separator: "\n")
    }

    /// One account in detail.
    public static func show(_ store: any ServerStore, _ account: AccountID) async throws(StoreError) -> String {
        guard let summary = try await store.accountSummary(account) else { return notFound(account) }
        return """
            account      \(Hex.encode(account.bytes))
            state        \(summary.blocked ? "blocked (its devices may not authenticate)" : "active")
            devices      \(devices(summary)) active, \(summary.deviceLog.count) device-log entries
            change sets  \(summary.changeSets) stored, head cursor \(summary.headCursor)
            stored       \(ByteCount(summary.storedBytes)) (counted against its quota)
            last write   \(date(summary.lastWriteMs))
            """
    }

    /// Blocks or unblocks; says what happened and when a running server notices.
    public static func block(_ store: any ServerStore, _ account: AccountID, blocked: Bool) async throws(StoreError) -> String {
        guard try await store.setBlocked(account, blocked: blocked) else { return notFound(account) }
        return blocked
            ? "Blocked account \(Hex.encode(account.bytes)): its devices may not authenticate, and running servers close "
                + "its connections within seconds (ACCOUNT_BLOCKED). Undo with cloak-server accounts unblock."
            : "Unblocked account \(Hex.encode(account.bytes)): its devices may authenticate again."
    }

    /// Erases every row of the account and says what was erased, table by table.
    public static func erase(_ store: any ServerStore, _ account: AccountID) async throws(StoreError) -> String {
        let report = try await store.eraseAccount(account)
        guard report.total > 0 else { return notFound(account) }
        let parts = ErasureReport.tables.compactMap { table in report.rows[table].map { "\($0) from \(table)" } }
        return "Erased account \(Hex.encode(account.bytes)): \(report.total) rows (\(parts.joined(separator: ", "))). "
            + "Running servers close its connections within seconds; backups taken before now still hold it."
    }

    private static func notFound(_ account: AccountID) -> String {
        "No account \(Hex.encode(account.bytes)) is stored; cloak-server accounts list shows the accounts there are."
    }

    /// Active devices by the stored log (unverifiable logs show as "?").
    static func devices(_ summary: AccountSummary) -> String {
        do {
            let entries = try summary.deviceLog.map { bytes throws(ProtocolError) in try DeviceLogEntry(wire: bytes) }
            return "\(try DeviceLog(verifying: entries).activeDevices.count)"
        } catch {
            return "?"
        }
    }

    static func date(_ ms: UInt64) -> String {
        guard ms > 0 else { return "-" }
        return Date(timeIntervalSince1970: Double(ms) / 1000).formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false).timeSeparator(.colon))
    }

    private static func pad(_ columns: [String]) -> String {
        let widths = [64, 8, 12, 12, 21, 7]
        return zip(columns, widths).map { $0.count >= $1 ? $0 + " " : $0 + String(repeating: " ", count: $1 - $0.count + 1) }
            .joined().trimmingCharacters(in: .whitespaces)
    }
}
