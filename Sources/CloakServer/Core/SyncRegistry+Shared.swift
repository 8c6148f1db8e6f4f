public import CloakProtocol
import Logging
import Metrics
import Synchronization

/// A fanout read: the change sets after what an account's live subscribers were sent, from
/// the store (``ServerConfiguration/sharedStore``). The driver reads the device log from
/// ``deviceLogFrom`` first when it is set, runs `query`, and hands both to
/// ``SyncRegistry/finishFanoutRead(_:deviceLog:result:)``.
public struct FanoutRead: Sendable, Equatable {
    /// The account.
    public let account: AccountID
    /// What to read.
    public let query: ChangeSetQuery
    /// Another process changed the account: read the device-log entries from this index too,
    /// so a removal is in force (the device disconnected) before anything new is sent.
    public let deviceLogFrom: UInt64?
    /// Which read this is (the answer to an earlier one is ignored).
    let id: UInt64
}

extension SyncRegistry {
    /// Another server process committed writes for `account`, moving it to `version` (its
    /// notification arrived): the cached copy reloads before its next request (after this
    /// process's own writes for it finish), a load already reading it reads again if it read
    /// an older version, and its live subscribers get the new change sets through a fanout read.
    public func remoteCommit(_ account: AccountID, version: UInt64) {
        metrics.remoteCommits.increment()
        state.withLock { s in
            if let announced = s.accounts[account]?.announcedVersion {
                s.accounts[account]?.announcedVersion = max(announced, version)
            } else if s.loading[account] != nil {
                s.announcedWhileLoading[account] = max(s.announcedWhileLoading[account] ?? 0, version)
            }
            markRemoteChange(account, in: &s)
        }
    }

    /// Notifications may have been missed (the listening connection was lost and is back):
    /// treats every cached account as changed elsewhere.
    public func remoteCommitsMayBeMissed() {
        state.withLock { s in
            for account in Array(s.accounts.keys) { markRemoteChange(account, in: &s) }
        }
    }

    /// Marks a cached account for reload before its next request, unless this process has
    /// writes of it in flight (they build on the cached copy). With `rateLimitedAtMs` (a request
    /// anyone may send) at most once a second per account. Returns whether it did.
    func markForReload(_ account: AccountID, rateLimitedAtMs nowMs: UInt64? = nil) -> Bool {
        state.withLock { s in
            guard let state = s.accounts[account], state.pendingWrites == 0 else { return false }
            if let nowMs {
                if let last = state.forcedReloadAtMs, nowMs < last + 1_000 { return false }
                s.accounts[account]?.forcedReloadAtMs = nowMs
            }
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
        // Connected devices may have been removed: the read reloads the account too.
        if !state.connections.isEmpty { requestFanoutRead(account, in: &s) }
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
                let id = s.nextFanoutRead
                s.nextFanoutRead += 1
                s.accounts[account]?.fanoutReading = true
                s.accounts[account]?.fanoutAgain = false
                s.accounts[account]?.fanoutReadID = id
                let query = ChangeSetQuery(
                    account: account, afterCursor: state.deliveredHead, throughCursor: UInt64(Int64.max),
                    limit: configuration.limits.maxCatchUpBatch, maxBytes: configuration.framePayloadBudget)
                let logFrom = state.needsReload ? UInt64(state.log.entries.count) : nil
                reads.append(FanoutRead(account: account, query: query, deviceLogFrom: logFrom, id: id))
            }
            return reads
        }
    }

    /// Appends the device-log entries read for it (`deviceLog`: stored entries from
    /// ``FanoutRead/deviceLogFrom``; devices no longer active are disconnected), then sends what
    /// the read found to the account's live subscribers, in cursor order and without what a
    /// subscriber pushed itself or already has; then asks for the next page if the read was cut
    /// short or more was committed meanwhile. A failed read is asked for again. The rest of
    /// the account (chain heads, quota) reloads before its next request.
    public func finishFanoutRead(
        _ read: FanoutRead, deviceLog newEntries: [[UInt8]]? = nil, result: Result<[StoredChangeSet], StoreError>
    ) {
        // Verified and parsed outside the lock (signatures; subscribers may filter by conversation).
        let base = newEntries?.isEmpty == false ? cachedLog(read.account) : nil
        let extended = base.flatMap { log in
            newEntries.flatMap { entries in
                do throws(ProtocolError) { return try extend(log, with: entries) } catch {
                    logger.critical(
                        "stored device log does not verify", metadata: ["account": "\(read.account)", "error": "\(error.message)"])
                    return nil
                }
            }
        }
        let conversations = (try? result.get())?.map { try? ChangeSet(wire: $0.bytes).header.conversation } ?? []
        state.withLock { s in
            guard let before = s.accounts[read.account], before.fanoutReading, before.fanoutReadID == read.id else { return }
            s.accounts[read.account]?.fanoutReading = false
            if let base, let extended, before.log.entries.count == base.entries.count {
                s.accounts[read.account]?.log = extended
                closeMembersNoLongerActive(read.account, in: &s)
            }
            guard let state = s.accounts[read.account] else { return }
            let rows: [StoredChangeSet]
            switch result {
            case .failure(let error):
                logger.error("fanout read failed", metadata: ["error": "\(error)"])
                requestFanoutRead(read.account, in: &s)
                return
            case .success(let found):
                rows = found
            }
            var items: [FanoutItem] = []
            for (row, conversation) in zip(rows, conversations) where row.cursor > state.deliveredHead {
                items.append(
                    FanoutItem(
                        cursor: row.cursor, conversation: conversation,
                        origin: state.localOrigins[row.cursor] ?? ConnectionID(rawValue: 0), bytes: row.bytes))
            }
            if let last = items.last {
                s.accounts[read.account]?.deliveredHead = max(state.deliveredHead, last.cursor)
                s.accounts[read.account]?.localOrigins = state.localOrigins.filter { $0.key > last.cursor }
                fanOut(items, account: read.account, in: &s)
            }
            let bytes = rows.reduce(0) { $0 + $1.bytes.count }
            let full =
                rows.count >= read.query.limit
                || bytes + configuration.limits.maxChangeSetBytes + 16 > read.query.maxBytes
            if state.fanoutAgain || (!items.isEmpty && full) { requestFanoutRead(read.account, in: &s) }
        }
    }
}
