public import CloakProtocol
import Logging
import Metrics
import Synchronization

/// A fanout read: the change sets after what an account's live subscribers were sent, from
/// the store (``ServerConfiguration/sharedStore``). The driver runs `query` and hands the rows
/// to ``SyncRegistry/finishFanoutRead(_:result:)``.
public struct FanoutRead: Sendable, Equatable {
    /// The account.
    public let account: AccountID
    /// What to read.
    public let query: ChangeSetQuery
}

extension SyncRegistry {
    /// Another server process committed writes for `account` (its notification arrived): the
    /// cached copy reloads before its next request (after this process's own writes for it
    /// finish), and its live subscribers get the new change sets through a fanout read.
    public func remoteCommit(_ account: AccountID) {
        metrics.remoteCommits.increment()
        state.withLock { s in markRemoteChange(account, in: &s) }
    }

    /// Notifications may have been missed (the listening connection was lost and is back):
    /// treats every cached account as changed elsewhere.
    public func remoteCommitsMayBeMissed() {
        state.withLock { s in
            for account in Array(s.accounts.keys) { markRemoteChange(account, in: &s) }
        }
    }

    /// Marks a cached account for reload before its next request, unless this process has
    /// writes of it in flight (they build on the cached copy). Returns whether it did.
    func markForReload(_ account: AccountID) -> Bool {
        state.withLock { s in
            guard let state = s.accounts[account], state.pendingWrites == 0 else { return false }
            s.accounts[account]?.needsReload = true
            return true
        }
    }

    private func markRemoteChange(_ account: AccountID, in s: inout RegistryState) {
        guard let state = s.accounts[account] else { return }
        if state.pendingWrites == 0 {
            s.accounts[account]?.needsReload = true
        } else {
            s.accounts[account]?.remoteChanged = true
        }
        if !state.subscribers.isEmpty { requestFanoutRead(account, in: &s) }
    }

    /// Asks the driver for a fanout read of `account` (or for another one after the running one).
    func requestFanoutRead(_ account: AccountID, in s: inout RegistryState) {
        guard let state = s.accounts[account] else { return }
        if state.fanoutReading {
            s.accounts[account]?.fanoutAgain = true
        } else if s.fanoutWanted.insert(account).inserted {
            output.fanoutReadNeeded()
        }
    }

    /// The fanout reads to run now (at most one per account at a time).
    public func takeFanoutReads() -> [FanoutRead] {
        state.withLock { s in
            let wanted = s.fanoutWanted.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
            s.fanoutWanted = []
            var reads: [FanoutRead] = []
            for account in wanted {
                guard let state = s.accounts[account], !state.fanoutReading else { continue }
                s.accounts[account]?.fanoutReading = true
                s.accounts[account]?.fanoutAgain = false
                let query = ChangeSetQuery(
                    account: account, afterCursor: state.deliveredHead, throughCursor: UInt64(Int64.max),
                    limit: configuration.limits.maxCatchUpBatch, maxBytes: configuration.framePayloadBudget)
                reads.append(FanoutRead(account: account, query: query))
            }
            return reads
        }
    }

    /// Sends what a fanout read found to the account's live subscribers, in cursor order and
    /// without the change sets a subscriber pushed itself, then asks for the next page if the
    /// read was cut short or more was committed meanwhile. A failed read is asked for again.
    public func finishFanoutRead(_ read: FanoutRead, result: Result<[StoredChangeSet], StoreError>) {
        state.withLock { s in
            guard let state = s.accounts[read.account], state.fanoutReading else { return }
            s.accounts[read.account]?.fanoutReading = false
            let rows: [StoredChangeSet]
            switch result {
            case .failure(let error):
                logger.error("fanout read failed", metadata: ["error": "\(error)"])
                requestFanoutRead(read.account, in: &s)
                return
            case .success(let found):
                rows = found.filter { $0.cursor > state.deliveredHead }
            }
            if let last = rows.last {
                let items = rows.map { row in
                    FanoutItem(
                        cursor: row.cursor, conversation: try? ChangeSet(wire: row.bytes).header.conversation,
                        origin: state.localOrigins[row.cursor] ?? ConnectionID(rawValue: 0), bytes: row.bytes)
                }
                s.accounts[read.account]?.deliveredHead = last.cursor
                s.accounts[read.account]?.localOrigins = state.localOrigins.filter { $0.key > last.cursor }
                fanOut(items, account: read.account, in: &s)
            }
            let bytes = rows.reduce(0) { $0 + $1.bytes.count }
            let full =
                rows.count >= read.query.limit
                || bytes + configuration.limits.maxChangeSetBytes + 16 > read.query.maxBytes
            if state.fanoutAgain || (!rows.isEmpty && full) { requestFanoutRead(read.account, in: &s) }
        }
    }
}
