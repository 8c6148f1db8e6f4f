@_spi(Randomness) public import CloakProtocol
public import Logging
import Metrics
import OrderedCollections
import Synchronization

/// The shared half of the sync core: every connection's registration, every account in use,
/// the group-commit staging area and the fanout. All methods are synchronous and short (no
/// I/O, no signature checks under the lock); time comes in as `nowMs` and output leaves
/// through the injected ``ServerOutput``.
///
/// ```swift
/// let registry = SyncRegistry(configuration: .init(), output: queues, metrics: metrics, logger: logger)
/// var connection = ServerConnection(registry: registry, random: SystemRandom(), nowMs: now)
/// var read = connection.receive(bytes, nowMs: now)        // frames in
/// while let next = read { read = connection.readCompleted(try await store.perform(next), nowMs: now) }
/// if let (id, batch) = registry.takeBatch() {             // the group committer
///     try await store.commit(batch); registry.finishBatch(id, error: nil, nowMs: now)
/// }
/// registry.tick(nowMs: now)                                // timeouts, once a second
/// ```
public final class SyncRegistry: Sendable {
    /// The limits and timeouts in force.
    public let configuration: ServerConfiguration
    /// The instruments.
    public let metrics: ServerMetrics
    let output: any ServerOutput
    let logger: Logger
    let work: any WorkSpreader
    let state: Mutex<RegistryState>

    /// Creates an empty registry. `work` decides whether a push's signature checks may use
    /// several cores (the default runs them in order on the caller's thread).
    public init(
        configuration: ServerConfiguration, output: any ServerOutput, metrics: ServerMetrics, logger: Logger,
        work: any WorkSpreader = SequentialWork()
    ) {
        self.configuration = configuration
        self.output = output
        self.metrics = metrics
        self.logger = logger
        self.work = work
        state = Mutex(RegistryState())
    }

    // MARK: Connections

    /// Registers a new connection from `address` (the client's IP address as the adapter
    /// sees it; nil in process). Over ``ServerConfiguration/maxConnections``,
    /// ``ServerConfiguration/maxConnectionsPerAddress`` or the caps on connections that have not
    /// authenticated (``ServerConfiguration/maxUnauthenticatedConnections``, per address too) it
    /// is marked refused: its ``ServerConnection`` answers TOO_MANY_CONNECTIONS and closes.
    public func open(nowMs: UInt64, address: String? = nil) -> ConnectionID {
        metrics.connections.increment()
        return state.withLock { s in
            let id = ConnectionID(rawValue: s.nextConnection)
            s.nextConnection += 1
            var entry = ConnectionEntry(openedAtMs: nowMs, lastFrameAtMs: nowMs)
            entry.address = address
            let fromAddress = address.map { s.connectionsByAddress[$0] ?? 0 } ?? 0
            let unauthenticatedFromAddress = address.map { s.unauthenticatedByAddress[$0] ?? 0 } ?? 0
            entry.overCap =
                s.connections.count >= configuration.maxConnections
                || (address != nil && fromAddress >= configuration.maxConnectionsPerAddress)
                || s.unauthenticated >= configuration.maxUnauthenticatedConnections
                || (address != nil && unauthenticatedFromAddress >= configuration.maxUnauthenticatedConnectionsPerAddress)
            if let address {
                s.connectionsByAddress[address] = fromAddress + 1
                s.unauthenticatedByAddress[address] = unauthenticatedFromAddress + 1
            }
            s.unauthenticated += 1
            s.connections[id] = entry
            return id
        }
    }

    /// Forgets a connection whose socket has closed (for any reason).
    public func disconnect(_ connection: ConnectionID) {
        state.withLock { s in
            guard let entry = s.connections.removeValue(forKey: connection) else { return }
            metrics.connections.decrement()
            if let address = entry.address {
                let left = (s.connectionsByAddress[address] ?? 1) - 1
                s.connectionsByAddress[address] = left > 0 ? left : nil
            }
            if entry.session == nil { s.connectionAuthenticated(entry) }
            for (account, count) in entry.loads { s.releaseLoad(account, count: count) }
            if let session = entry.session {
                s.accounts[session.account]?.connections.remove(connection)
                s.accounts[session.account]?.subscribers[connection] = nil
                s.evictIfIdle(session.account)
            }
            for account in entry.loads.keys { s.evictIfIdle(account) }
        }
    }

    /// Whether the server stopped taking requests.
    public var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// Stops taking requests: new connections and frames are answered with SHUTTING_DOWN.
    /// Staged writes still commit; call ``closeAll(with:)`` once they have.
    public func beginShutdown() {
        state.withLock { $0.shuttingDown = true }
    }

    /// Closes every connection with `error` (graceful shutdown).
    public func closeAll(with error: ProtocolError) {
        state.withLock { s in
            for id in s.connections.keys.sorted() { close(id, error, requestID: 0, in: &s) }
        }
    }

    /// Closes connections that did not authenticate within the handshake timeout or sent
    /// nothing within the idle timeout, and assistants whose grant expired (PROTOCOL.md §29),
    /// and forgets expired rate-limit windows.
    public func tick(nowMs: UInt64) {
        state.withLock { s in
            for (id, entry) in s.connections where !entry.closed {
                if entry.session == nil, nowMs >= entry.openedAtMs + configuration.handshakeTimeoutMs {
                    close(id, .handshakeTimeout, requestID: 0, in: &s)
                } else if nowMs >= entry.lastFrameAtMs + configuration.idleTimeoutMs {
                    close(id, .idleTimeout, requestID: 0, in: &s)
                } else if let session = entry.session, session.isAssistant,
                    let expiresAt = s.accounts[session.account]?.log.assistants[session.device]?.current.expiresAtMs,
                    nowMs >= expiresAt
                {
                    close(id, .grantExpired, requestID: 0, in: &s)
                }
            }
            if nowMs >= s.limiterSweepAtMs {
                s.limiterSweepAtMs = nowMs + configuration.recoveryWindowMs
                s.recoveryAuthLimits = s.recoveryAuthLimits.filter { !$0.value.isIdle(nowMs: nowMs) }
                s.recoveryFetchLimits = s.recoveryFetchLimits.filter { !$0.value.isIdle(nowMs: nowMs) }
                s.registrationsByAddress = s.registrationsByAddress.filter { !$0.value.isIdle(nowMs: nowMs) }
                s.evaluationsByAddress = s.evaluationsByAddress.filter { !$0.value.isIdle(nowMs: nowMs) }
                s.mailboxPutsByAddress = s.mailboxPutsByAddress.filter { !$0.value.isIdle(nowMs: nowMs) }
            }
        }
    }

    /// Number of open connections (for tests and readiness).
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Records that a frame arrived (idle timeout).
    func touch(_ connection: ConnectionID, nowMs: UInt64) {
        state.withLock { s in s.connections[connection]?.lastFrameAtMs = nowMs }
    }

    /// The connection's session, if it authenticated and is still open.
    func session(_ connection: ConnectionID) -> Session? {
        state.withLock { s in s.connections[connection].flatMap { $0.closed ? nil : $0.session } }
    }

    /// Whether the connection was closed by the core (its frames are then ignored).
    func isClosed(_ connection: ConnectionID) -> Bool {
        state.withLock { s in s.connections[connection]?.closed ?? true }
    }

    /// Sends a closing error and closes.
    func close(_ connection: ConnectionID, _ error: ProtocolError, requestID: UInt64) {
        state.withLock { s in close(connection, error, requestID: requestID, in: &s) }
    }

    func close(_ connection: ConnectionID, _ error: ProtocolError, requestID: UInt64, in s: inout RegistryState) {
        guard var entry = s.connections[connection], !entry.closed else { return }
        entry.closed = true
        s.connections[connection] = entry
        if let session = entry.session {
            s.accounts[session.account]?.connections.remove(connection)
            s.accounts[session.account]?.subscribers[connection] = nil
        }
        logger.info(
            "closing connection", metadata: ["connection": "\(connection)", "code": "\(error.metricName)"])
        metrics.error(error)
        output.send(FrameCodec.encodeError(error, requestID: requestID), to: connection)
        output.close(connection, with: error)
    }

    /// Logs a store failure: the first of an outage at error level, the rest at debug until a
    /// commit succeeds again, so a database outage is one line, not one per request.
    func logStoreFailure(_ what: String, _ error: StoreError, connection: ConnectionID) {
        state.withLock { s in logStoreFailure(what, error, connection: connection, in: &s) }
    }

    func logStoreFailure(
        _ what: String, _ error: StoreError, connection: ConnectionID? = nil, batch: UInt64? = nil,
        in s: inout RegistryState
    ) {
        var metadata: Logger.Metadata = ["error": "\(error)"]
        if let connection { metadata["connection"] = "\(connection)" }
        if let batch { metadata["batch"] = "\(batch)" }
        if s.storeFailing {
            logger.debug("\(what)", metadata: metadata)
        } else {
            s.storeFailing = true
            logger.error("\(what) (further failures are logged at debug level until a commit succeeds)", metadata: metadata)
        }
    }

    /// Sends a request-scoped error (the connection stays open).
    func reject(_ connection: ConnectionID, _ error: ProtocolError, requestID: UInt64) {
        if case .rateLimited = error {
            logger.debug("request rejected", metadata: ["connection": "\(connection)", "code": "\(error.metricName)"])
        } else {
            logger.info(
                "request rejected",
                metadata: ["connection": "\(connection)", "code": "\(error.metricName)", "detail": "\(error.message)"])
        }
        metrics.error(error)
        output.send(FrameCodec.encodeError(error, requestID: requestID), to: connection)
    }
}

struct ConnectionEntry {
    var openedAtMs: UInt64
    var lastFrameAtMs: UInt64
    var session: Session?
    /// Account loads this connection started and has not finished (they pin the account).
    var loads: [AccountID: Int] = [:]
    var closed = false
    /// The client's address (per-address caps), if the adapter knows it.
    var address: String?
    /// Opened over a connection cap: answered TOO_MANY_CONNECTIONS.
    var overCap = false
}

struct RegistryState {
    var nextConnection: UInt64 = 1
    var connections: [ConnectionID: ConnectionEntry] = [:]
    var accounts: [AccountID: AccountState] = [:]
    /// Loads in progress per account: an account is never evicted while one runs, so a load
    /// that started before a write can never install an older state over it.
    var loading: [AccountID: Int] = [:]
    // Kept outside AccountState so evicting an idle account does not reset them.
    var recoveryAuthLimits: [AccountID: SlidingWindowLimiter] = [:]
    var recoveryFetchLimits: [AccountID: SlidingWindowLimiter] = [:]
    /// Counted guesses against stand-in enrollments (accounts without a passphrase, or none):
    /// in memory only, bounded (PROTOCOL.md §25).
    var decoyGuesses: [AccountID: RecoveryRecord] = [:]
    var limiterSweepAtMs: UInt64 = 0
    var connectionsByAddress: [String: Int] = [:]
    /// Connections that have not authenticated (yet), in all and per address.
    var unauthenticated = 0
    var unauthenticatedByAddress: [String: Int] = [:]
    var registrationsByAddress: [String: SlidingWindowLimiter] = [:]
    /// Recovery evaluations and pre-authentication mailbox puts per address.
    var evaluationsByAddress: [String: SlidingWindowLimiter] = [:]
    var mailboxPutsByAddress: [String: SlidingWindowLimiter] = [:]
    var registrations: SlidingWindowLimiter?
    /// Bytes all accounts store (the store's figure, moved by this process's writes).
    var totalStoredBytes: Int64 = 0
    /// A store failure was logged at error level and no commit has succeeded since.
    var storeFailing = false
    var pending = PendingBatch(id: 1)
    var inFlight: PendingBatch?
    /// Accounts waiting for a fanout read (shared store).
    var fanoutWanted: Set<AccountID> = []
    var nextFanoutRead: UInt64 = 1
    /// Versions other processes announced for accounts being loaded but not cached yet.
    var announcedWhileLoading: [AccountID: UInt64] = [:]
    var nextBatchID: UInt64 = 2
    var shuttingDown = false

    /// A connection stops counting as unauthenticated (it authenticated, or it closed first).
    mutating func connectionAuthenticated(_ entry: ConnectionEntry) {
        unauthenticated -= 1
        if let address = entry.address {
            let left = (unauthenticatedByAddress[address] ?? 1) - 1
            unauthenticatedByAddress[address] = left > 0 ? left : nil
        }
    }

    mutating func releaseLoad(_ account: AccountID, count: Int = 1) {
        let left = (loading[account] ?? 0) - count
        loading[account] = left > 0 ? left : nil
    }

    /// Keeps a stand-in's counters; at `limit` accounts the one guessed at longest ago goes.
    mutating func rememberDecoyGuess(_ record: RecoveryRecord, limit: Int) {
        if decoyGuesses[record.account] == nil, decoyGuesses.count >= limit,
            let oldest = decoyGuesses.min(by: { $0.value.lastAttemptMs < $1.value.lastAttemptMs })?.key
        {
            decoyGuesses[oldest] = nil
        }
        decoyGuesses[record.account] = record
    }

    /// Drops an account nobody uses, so memory follows the active accounts.
    mutating func evictIfIdle(_ account: AccountID) {
        guard let state = accounts[account], state.connections.isEmpty, state.pendingWrites == 0,
            loading[account] == nil
        else { return }
        accounts[account] = nil
    }
}
