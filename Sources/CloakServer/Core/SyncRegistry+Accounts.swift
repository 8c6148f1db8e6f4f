import CloakProtocol
import Logging
import Metrics
import Synchronization

/// How a request finds its account in the registry.
enum AccountLookup {
    /// Cached and current.
    case ready(DeviceLog)
    /// Not cached (`cached` false), or cached but stale (after a failed commit, or changed by
    /// another process): load it from the store first.
    case needsLoad(cached: Bool)
}

extension SyncRegistry {
    /// The account's verified device log, if the registry holds a current copy.
    func lookup(_ account: AccountID) -> AccountLookup {
        state.withLock { s in
            guard let cached = s.accounts[account], !cached.needsReload else {
                return .needsLoad(cached: s.accounts[account] != nil)
            }
            return .ready(cached.log)
        }
    }

    /// The highest cursor this process knows the account has (committed here, or delivered from
    /// another process's commits); 0 when the account is not cached.
    func knownHead(_ account: AccountID) -> UInt64 {
        state.withLock { s in s.accounts[account].map { max($0.committedHead, $0.deliveredHead) } ?? 0 }
    }

    /// Notes that `connection` is loading `account` (pins it against eviction).
    func beginLoad(_ connection: ConnectionID, account: AccountID) {
        state.withLock { s in
            s.loading[account, default: 0] += 1
            s.connections[connection]?.loads[account, default: 0] += 1
        }
    }

    /// Installs a loaded account (its log already verified by the caller, outside the lock)
    /// unless the registry holds a current copy, which is never older than the store's. The
    /// load stays pinned until ``releaseLoad(_:account:)``, so the request that asked for it
    /// finds the account. Returns the log in force, or nil when the account does not exist.
    ///
    /// `stale` is true when the record is older than what the registry knows the store holds
    /// (a version another process announced, or one this process loaded or committed): it is
    /// not installed and the caller should read again. An installed reload closes the
    /// connections of devices the new log no longer lists as active.
    func installLoaded(_ connection: ConnectionID, account: AccountID, record: AccountRecord?, log: DeviceLog?)
        -> (log: DeviceLog?, stale: Bool)
    {
        state.withLock { s in
            if let cached = s.accounts[account], !cached.needsReload { return (cached.log, false) }
            guard let record, let log else { return (nil, false) }
            let cached = s.accounts[account]
            let announced = max(cached?.announcedVersion ?? 0, s.announcedWhileLoading[account] ?? 0)
            if record.version < max(announced, cached?.storeVersion ?? 0) {
                if cached == nil { s.announcedWhileLoading[account] = announced }
                return (nil, true)
            }
            s.announcedWhileLoading[account] = nil
            if cached != nil {
                s.accounts[account]?.reload(from: record, log: log)
                closeMembersNoLongerActive(account, in: &s)
            } else {
                s.accounts[account] = AccountState(record: record, log: log)
            }
            s.accounts[account]?.announcedVersion = announced
            return (log, false)
        }
    }

    /// The stored device log of `record`, verified entry by entry (outside the lock: it checks
    /// signatures). When the stored log continues `cached` (its entry at the cached head's index
    /// has the cached head's hash, which chains everything before it), only the new entries
    /// are verified: with a shared store accounts reload often, and a log of many devices costs
    /// a signature check per entry. A log that does not verify is logged as corruption.
    func verifiedLog(of record: AccountRecord, extending cached: DeviceLog? = nil) throws(ProtocolError) -> DeviceLog {
        let maxCutoffs = configuration.limits.maxRemovalCutoffs
        do throws(ProtocolError) {
            if let cached, record.deviceLog.count >= cached.entries.count,
                try DeviceLogEntry(wire: record.deviceLog[cached.entries.count - 1], maxCutoffs: maxCutoffs).hash
                    == cached.head
            {
                return try extend(cached, with: record.deviceLog[cached.entries.count...])
            }
            let entries = try record.deviceLog.map { bytes throws(ProtocolError) in
                try DeviceLogEntry(wire: bytes, maxCutoffs: maxCutoffs)
            }
            let log = try DeviceLog(verifying: entries)
            guard log.account == record.account else { throw ProtocolError.invalidDeviceLog("stored log of another account") }
            return log
        } catch {
            logger.critical(
                "stored device log does not verify", metadata: ["account": "\(record.account)", "error": "\(error.message)"])
            throw error
        }
    }

    /// `log` with stored entries appended, each checked by the log rules (signer, chain, signature).
    func extend(_ log: DeviceLog, with entries: some Collection<[UInt8]>) throws(ProtocolError) -> DeviceLog {
        var log = log
        for bytes in entries {
            try log.append(DeviceLogEntry(wire: bytes, maxCutoffs: configuration.limits.maxRemovalCutoffs))
        }
        return log
    }

    /// The cached device log of `account`, if any (a reload verifies only what follows it).
    func cachedLog(_ account: AccountID) -> DeviceLog? {
        state.withLock { $0.accounts[account]?.log }
    }

    /// Ends a load started with ``beginLoad(_:account:)``; the account may now be evicted if
    /// nobody uses it.
    func releaseLoad(_ connection: ConnectionID, account: AccountID) {
        state.withLock { s in
            guard let count = s.connections[connection]?.loads[account] else { return }
            s.connections[connection]?.loads[account] = count > 1 ? count - 1 : nil
            s.releaseLoad(account)
            if s.loading[account] == nil { s.announcedWhileLoading[account] = nil }
            s.evictIfIdle(account)
        }
    }

    /// Creates an account whose genesis was verified and found absent from the store.
    func register(
        _ connection: ConnectionID, requestID: UInt64, log: DeviceLog, genesis: [UInt8], existsInStore: Bool
    ) throws(ProtocolError) {
        try state.withLock { (s) throws(ProtocolError) in
            let account = log.account
            if let count = s.connections[connection]?.loads[account] {
                s.connections[connection]?.loads[account] = count > 1 ? count - 1 : nil
                s.releaseLoad(account)
            }
            guard !existsInStore, s.accounts[account] == nil else {
                s.evictIfIdle(account)
                throw .accountExists
            }
            let record = AccountRecord(
                account: account, deviceLog: [genesis], headCursor: 0, storedBytes: 0, chains: [:], newestSnapshots: [:])
            s.accounts[account] = AccountState(record: record, log: log)
            stage(account: account, rows: 1, completion: .done(connection, requestID: requestID), in: &s) { pending in
                pending.batch.logEntries.append(.init(account: account, index: 0, bytes: genesis))
            }
        }
    }

    /// Counts a recovery-key authentication attempt against the account's window.
    func allowRecoveryAuthentication(_ account: AccountID, nowMs: UInt64) -> Bool {
        allow(account, in: \.recoveryAuthLimits, limit: configuration.maxRecoveryAuthenticationsPerWindow, nowMs: nowMs)
    }

    /// Counts an unauthenticated recovery-blob fetch against the account's window.
    func allowRecoveryFetch(_ account: AccountID, nowMs: UInt64) -> Bool {
        allow(account, in: \.recoveryFetchLimits, limit: configuration.maxRecoveryFetchesPerWindow, nowMs: nowMs)
    }

    private func allow(
        _ account: AccountID, in limits: WritableKeyPath<RegistryState, [AccountID: SlidingWindowLimiter]>, limit: Int,
        nowMs: UInt64
    ) -> Bool {
        state.withLock { s in
            var limiter =
                s[keyPath: limits][account] ?? SlidingWindowLimiter(limit: limit, windowMs: configuration.recoveryWindowMs)
            let allowed = limiter.allow(nowMs: nowMs)
            s[keyPath: limits][account] = limiter
            return allowed
        }
    }

    /// Binds a verified device (or recovery key) to the connection. Re-checks membership
    /// against the current log (a removal may have landed since the signature check) and
    /// enforces the per-account connection limit. A recovery key's session resets the account's
    /// recovery-guess count (a successful recovery); a device session gets, with its result, the
    /// notices of guesses before the last success and since (sent after AuthResult).
    func authenticate(_ connection: ConnectionID, session: Session, nowMs: UInt64) throws(ProtocolError)
        -> (result: Cloak_V1_AuthResult, notices: [Cloak_V1_AccountNotice])
    {
        try state.withLock { (s) throws(ProtocolError) in
            guard let entry = s.connections[connection], !entry.closed else { throw .shuttingDown }
            guard entry.session == nil else { throw .unexpectedFrame("already authenticated") }
            guard let account = s.accounts[session.account], !account.needsReload else { throw .internalError }
            guard !account.blocked else { throw .accountBlocked }
            if session.isAssistant {
                guard account.assistant(session.device) != nil else { throw .deviceNotActive }
            } else {
                guard let member = account.member(session.device), member.isRecoveryKey == session.isRecoveryKey else {
                    throw .deviceNotActive
                }
            }
            guard account.connections.count < configuration.maxConnectionsPerAccount else {
                throw .tooManyConnections
            }
            s.connections[connection]?.session = session
            s.connectionAuthenticated(entry)
            s.accounts[session.account]?.connections.insert(connection)
            var result = Cloak_V1_AuthResult()
            result.headCursor = account.committedHead
            result.deviceLogLength = UInt64(account.log.entries.count)
            if session.isRecoveryKey {
                recoverySucceeded(session.account, nowMs: nowMs, in: &s)
                return (result, [])
            }
            return (result, pendingRecoveryNotices(session.account, in: s))
        }
    }

    /// The session and the account's current log, for checks done outside the lock.
    func sessionLog(_ connection: ConnectionID) -> SessionLookup {
        state.withLock { s in
            guard let entry = s.connections[connection], !entry.closed, let session = entry.session else {
                return .none
            }
            guard let account = s.accounts[session.account], !account.needsReload else { return .needsReload(session) }
            return .ready(session, account.log)
        }
    }
}

/// A connection's session as seen by a request.
enum SessionLookup {
    /// Not authenticated (or closed).
    case none
    /// The account must be reloaded from the store first (a commit failed).
    case needsReload(Session)
    /// The session and the account's current log.
    case ready(Session, DeviceLog)
}
