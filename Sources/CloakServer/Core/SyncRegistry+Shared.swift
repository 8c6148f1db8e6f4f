public import CloakProtocol
import Logging
import Metrics
import Synchronization

/// A fanout read: the change sets after what an account's live subscribers were sent, from
/// the store (``ServerConfiguration/sharedStore``). The driver performs ``reads`` in order and
/// hands the answers to ``SyncRegistry/finishFanoutRead(_:results:)``.
public struct FanoutRead: Sendable, Equatable {
    /// The account.
    public let account: AccountID
    let query: ChangeSetQuery
    /// Read the device-log entries from this index too (the cached head's), so a removal
    /// another process committed is in force (the device disconnected) before anything new is sent.
    let deviceLogFrom: UInt64?
    /// Read the whole account record too (the log could not be brought up to date from its
    /// new entries; no writes of the account are in flight).
    let readsAccount: Bool
    /// Which read this is (the answer to an earlier one is ignored).
    let id: UInt64

    /// The store reads, in the order they must run: the change sets first, then the log or the
    /// account, so a removal committed before any of those change sets is seen.
    public var reads: [StoreRead] {
        var reads: [StoreRead] = [.changeSets(query)]
        if readsAccount {
            reads.append(.account(account))
        } else if let deviceLogFrom {
            reads.append(.deviceLog(account, fromIndex: deviceLogFrom))
        }
        return reads
    }
}

/// What ``SyncRegistry/markForReload(_:rateLimitedAtMs:)`` did.
enum ForcedReload {
    case marked, writesInFlight, rateLimited
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
    /// writes of it in flight (they build on the cached copy) or it forced a reload of the
    /// account less than a second ago.
    func markForReload(_ account: AccountID, rateLimitedAtMs nowMs: UInt64) -> ForcedReload {
        state.withLock { s in
            guard let state = s.accounts[account], state.pendingWrites == 0 else { return .writesInFlight }
            if let last = state.forcedReloadAtMs, nowMs < last + 1_000 { return .rateLimited }
            s.accounts[account]?.forcedReloadAtMs = nowMs
            s.accounts[account]?.needsReload = true
            return .marked
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
            let wanted = s.fanoutWanted.sorted()
            s.fanoutWanted = []
            var reads: [FanoutRead] = []
            for account in wanted {
                guard let state = s.accounts[account], !state.fanoutReading else { continue }
                // A read of the whole account waits until this process's writes of it are done
                // (settling them asks for it again).
                let readsAccount = state.fanoutNeedsAccount
                if readsAccount, state.pendingWrites > 0 { continue }
                let id = s.nextFanoutRead
                s.nextFanoutRead += 1
                s.accounts[account]?.fanoutReading = true
                s.accounts[account]?.fanoutAgain = false
                s.accounts[account]?.fanoutReadID = id
                let query = ChangeSetQuery(
                    account: account, afterCursor: state.deliveredHead, throughCursor: UInt64(Int64.max),
                    limit: configuration.limits.maxCatchUpBatch, maxBytes: configuration.framePayloadBudget)
                let logFrom = configuration.sharedStore && !readsAccount ? state.log.headIndex : nil
                reads.append(
                    FanoutRead(account: account, query: query, deviceLogFrom: logFrom, readsAccount: readsAccount, id: id))
            }
            return reads
        }
    }

    /// Brings the cached device log up to date with what was read for it (``FanoutRead``:
    /// stored entries from the cached head, or the whole account), disconnecting devices no
    /// longer active, then sends what the read found to the account's live subscribers, in
    /// cursor order and without what a subscriber pushed itself or already has; then asks for
    /// the next page if the read was cut short or more was committed meanwhile. If the log
    /// cannot be brought up to date (the cached head is not the stored entry at its index),
    /// nothing is sent until a read of the whole account. A failed read is asked for again.
    /// `results` answer ``FanoutRead/reads``, in order.
    public func finishFanoutRead(_ read: FanoutRead, results: Result<[StoreReadResult], StoreError>) {
        let result: Result<[StoredChangeSet], StoreError>
        var record: AccountRecord?
        var entries: [[UInt8]]?
        switch results {
        case .success(let answers):
            guard case .changeSets(let rows)? = answers.first else {
                result = .failure(.operationFailed("fanout read answered with another result"))
                break
            }
            result = .success(rows)
            switch answers.dropFirst().first {
            case .account(let found)?: record = found
            case .deviceLog(let found)?: entries = found
            default: break
            }
        case .failure(let error):
            result = .failure(error)
        }
        finish(read, record: record, entries: entries, result: result)
    }

    private func finish(
        _ read: FanoutRead, record: AccountRecord?, entries: [[UInt8]]?, result: Result<[StoredChangeSet], StoreError>
    ) {
        // Verified and parsed outside the lock (signatures; subscribers may filter by conversation).
        let cached = read.readsAccount || read.deviceLogFrom != nil ? cachedLog(read.account) : nil
        let update = logUpdate(read, cached: cached, record: record, entries: entries)
        let conversations = (try? result.get())?.map { try? ChangeSet(wire: $0.bytes).header.conversation } ?? []
        state.withLock { s in
            // Scalars only: a copy of the account alive while its log or members change below
            // would make those tables copy themselves whole.
            guard
                let before = s.accounts[read.account].map({
                    (reading: $0.fanoutReading, readID: $0.fanoutReadID, logCount: $0.log.entries.count,
                     pendingWrites: $0.pendingWrites, newestVersion: max($0.announcedVersion, $0.storeVersion))
                }),
                before.reading, before.readID == read.id
            else { return }
            s.accounts[read.account]?.fanoutReading = false
            guard case .success = result else {
                logger.error("fanout read failed", metadata: ["account": "\(read.account)"])
                requestFanoutRead(read.account, in: &s)
                return
            }
            // The log changed while the read ran (a reload or a local append): read again.
            guard cached == nil || before.logCount == cached?.entries.count else {
                requestFanoutRead(read.account, in: &s)
                return
            }
            switch update {
            case .unchanged:
                break
            case .log(let log):
                s.accounts[read.account]?.log = log
                closeMembersNoLongerActive(read.account, in: &s)
            case .account(let record, let log):
                guard before.pendingWrites == 0, record.version >= before.newestVersion else {
                    requestFanoutRead(read.account, in: &s)
                    return
                }
                s.accounts[read.account]?.reload(from: record, log: log)
                closeMembersNoLongerActive(read.account, in: &s)
            case .behind:
                s.accounts[read.account]?.fanoutNeedsAccount = true
                if before.pendingWrites == 0 {
                    s.accounts[read.account]?.needsReload = true
                    requestFanoutRead(read.account, in: &s)
                } else {
                    s.accounts[read.account]?.remoteChanged = true
                }
                return
            }
            guard let state = s.accounts[read.account] else { return }
            let rows = (try? result.get()) ?? []
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

    /// What a fanout read's log entries or account record mean for the cached log.
    private enum LogUpdate {
        case unchanged
        case log(DeviceLog)
        case account(AccountRecord, DeviceLog)
        /// The cached head is not the stored entry at its index (a local append not committed,
        /// or lost to a conflict), or the new entries do not verify.
        case behind
    }

    private func logUpdate(_ read: FanoutRead, cached: DeviceLog?, record: AccountRecord?, entries: [[UInt8]]?)
        -> LogUpdate
    {
        if let record {
            guard let log = try? verifiedLog(of: record, extending: cached) else { return .behind }
            return .account(record, log)
        }
        guard let entries, let cached, let from = read.deviceLogFrom else { return .unchanged }
        guard from == cached.headIndex, let first = entries.first,
            (try? DeviceLogEntry(wire: first, maxCutoffs: configuration.limits.maxRemovalCutoffs))?.hash == cached.head
        else { return .behind }
        guard entries.count > 1 else { return .unchanged }
        do throws(ProtocolError) {
            return .log(try extend(cached, with: entries.dropFirst()))
        } catch {
            logger.critical(
                "stored device log does not verify", metadata: ["account": "\(read.account)", "error": "\(error.message)"])
            return .behind
        }
    }
}
