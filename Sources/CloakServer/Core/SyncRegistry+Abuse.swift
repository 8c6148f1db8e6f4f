public import CloakProtocol
import Synchronization

/// Process-wide limits against abuse (connection caps, registration rates, total storage) and
/// the operator's account blocks. Everything is decided here on the injected clock; the adapter
/// supplies client addresses and the store's figures.
extension SyncRegistry {
    /// Whether `open` refused the connection (over the process's or its address's cap); such
    /// a connection is answered TOO_MANY_CONNECTIONS instead of ServerHello.
    func refusedAtOpen(_ connection: ConnectionID) -> Bool {
        state.withLock { $0.connections[connection]?.overCap ?? false }
    }

    /// Counts a Register against its address's window and the global one (RATE_LIMITED when
    /// either is full). A connection without an address (in-process) counts only globally.
    func allowRegistration(_ connection: ConnectionID, nowMs: UInt64) -> Bool {
        state.withLock { s in
            let window = configuration.registrationWindowMs
            var global =
                s.registrations ?? SlidingWindowLimiter(limit: configuration.maxRegistrations, windowMs: window)
            let address = s.connections[connection]?.address
            var perAddress = address.map {
                s.registrationsByAddress[$0]
                    ?? SlidingWindowLimiter(limit: configuration.maxRegistrationsPerAddress, windowMs: window)
            }
            // Look at both before counting: a refusal by one must not use up the other.
            guard global.hasRoom(nowMs: nowMs), perAddress?.hasRoom(nowMs: nowMs) ?? true else { return false }
            _ = global.allow(nowMs: nowMs)
            _ = perAddress?.allow(nowMs: nowMs)
            s.registrations = global
            if let address, let perAddress { s.registrationsByAddress[address] = perAddress }
            return true
        }
    }

    /// Counts a pre-authentication request of `limits`' kind (recovery evaluations, mailbox
    /// puts) against its address's window (RATE_LIMITED when full); a connection without an
    /// address (in process) is not counted.
    func allowFromAddress(
        _ connection: ConnectionID, _ limits: WritableKeyPath<RegistryState, [String: SlidingWindowLimiter]>, limit: Int,
        nowMs: UInt64
    ) -> Bool {
        state.withLock { s in
            guard let address = s.connections[connection]?.address else { return true }
            var limiter = s[keyPath: limits][address] ?? SlidingWindowLimiter(limit: limit, windowMs: configuration.recoveryWindowMs)
            let allowed = limiter.allow(nowMs: nowMs)
            s[keyPath: limits][address] = limiter
            return allowed
        }
    }

    /// The account id rows that belong to no account are staged under (a new device's pairing
    /// answer before authentication): all zeros, which no genesis hash is.
    static let noAccount = AccountID(unchecked: [UInt8](repeating: 0, count: 32))

    /// The store's total of stored bytes (all accounts), read by the adapter at start and now
    /// and then: writes in between move it, compaction and other processes are caught up here.
    public func setTotalStoredBytes(_ bytes: Int64) {
        state.withLock { $0.totalStoredBytes = bytes }
    }

    /// Bytes all accounts may still add before ``ServerConfiguration/maxTotalStoredBytes``.
    func totalRoom(in s: borrowing RegistryState) -> Int64 {
        configuration.maxTotalStoredBytes == .max ? .max : configuration.maxTotalStoredBytes - s.totalStoredBytes
    }

    /// The accounts this process holds in memory (those with connections, loads or writes).
    public var cachedAccounts: [AccountID] {
        state.withLock { $0.accounts.keys.sorted() }
    }

    /// Applies the operator's blocks and erasures that a sweep read from the store: `states`
    /// holds the accounts of `checked` that still exist, each with its blocked flag. A blocked
    /// account's connections are closed with ACCOUNT_BLOCKED and its authentications refused;
    /// an erased one's are closed with UNKNOWN_ACCOUNT and it is read again before any use.
    public func applyAccessStates(_ states: [AccountID: Bool], checked: [AccountID]) {
        state.withLock { s in
            for account in checked where s.accounts[account] != nil {
                let blocked = states[account]
                s.accounts[account]?.blocked = blocked ?? true
                guard blocked != false else { continue }
                if blocked == nil { s.accounts[account]?.needsReload = true }
                let error: ProtocolError = blocked == nil ? .unknownAccount : .accountBlocked
                for connection in (s.accounts[account]?.connections ?? []).sorted() {
                    close(connection, error, requestID: 0, in: &s)
                }
            }
        }
    }
}

extension SlidingWindowLimiter {
    /// Whether an event now would be allowed (without recording it).
    func hasRoom(nowMs: UInt64) -> Bool {
        var probe = self
        return probe.allow(nowMs: nowMs)
    }
}
