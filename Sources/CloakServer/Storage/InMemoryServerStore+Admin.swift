public import CloakProtocol
import Synchronization

extension InMemoryServerStore {
    /// Accounts in id order after `after`, with their sizes.
    public func accountSummaries(after: AccountID?, limit: Int) async throws(StoreError) -> [AccountSummary] {
        state.withLock { s in
            s.accounts.keys.filter { id in after.map { $0 < id } ?? true }.sorted().prefix(limit).compactMap {
                Self.summary($0, s)
            }
        }
    }

    /// One account's summary.
    public func accountSummary(_ account: AccountID) async throws(StoreError) -> AccountSummary? {
        state.withLock { Self.summary(account, $0) }
    }

    /// Blocks or unblocks an account.
    public func setBlocked(_ account: AccountID, blocked: Bool) async throws(StoreError) -> Bool {
        state.withLock { s in
            guard s.accounts[account] != nil else { return false }
            s.accounts[account]?.blocked = blocked
            return true
        }
    }

    /// Deletes everything of the account (the rows it would have in the database stores).
    public func eraseAccount(_ account: AccountID) async throws(StoreError) -> ErasureReport {
        state.withLock { s in
            guard let data = s.accounts.removeValue(forKey: account) else { return ErasureReport(rows: [:]) }
            if let recovery = data.recovery { s.recoveryKeys[recovery.recoveryKeyID] = nil }
            let counts = [
                "change_sets": data.rows.count, "chains": data.chains.count, "device_log": data.log.count,
                "key_envelopes": data.envelopes.keys.filter { $0.conversation == nil }.count,
                "conversation_keys": data.envelopes.keys.filter { $0.conversation != nil }.count,
                "snapshots": data.snapshots.count,
                "recoveries": data.recovery == nil ? 0 : 1, "cursor_acks": data.acks.count, "accounts": 1,
            ]
            return ErasureReport(rows: counts.filter { $0.value > 0 })
        }
    }

    /// Of `accounts`, those that exist, with their blocked flags.
    public func accessStates(_ accounts: [AccountID]) async throws(StoreError) -> [AccountID: Bool] {
        state.withLock { s in
            var out: [AccountID: Bool] = [:]
            for account in accounts { if let data = s.accounts[account] { out[account] = data.blocked } }
            return out
        }
    }

    /// Totals (nothing is on disk).
    public func usage() async throws(StoreError) -> StoreUsage {
        try checkOutage()
        return state.withLock { s in
            StoreUsage(
                accounts: s.accounts.count, storedBytes: s.accounts.values.reduce(0) { $0 + $1.storedBytes }, databaseBytes: 0)
        }
    }

    private static func summary(_ account: AccountID, _ s: State) -> AccountSummary? {
        guard let data = s.accounts[account] else { return nil }
        return AccountSummary(
            account: account, storedBytes: data.storedBytes, changeSets: data.rows.filter { $0.bytes != nil }.count,
            deviceLog: data.log, headCursor: data.head, lastWriteMs: data.lastWriteMs, blocked: data.blocked)
    }
}
