@_spi(Randomness) public import CloakCrypto
@_spi(Randomness) public import CloakServer
@_spi(Randomness) public import CloakProtocol
public import Logging
import Synchronization
@_spi(Randomness) import CloakTesting

/// The whole sync server in one thread, without NIO: the real core (``SyncRegistry`` and one
/// ``ServerConnection`` per client) over an ``InMemoryServerStore``, driven by calls and
/// answering with the frames and closes each connection would see. This is what the
/// deterministic simulator runs; the WebSocket adapter drives the same core.
///
/// ```swift
/// let server = SynchronousServer(configuration: .init(), random: DeterministicRandom(seed: 7), logger: logger)
/// let device = server.connect(nowMs: 0)
/// server.receive(authenticateFrame, from: device, nowMs: 5)
/// for output in server.drain(device) { … }      // .frame(bytes) / .closed(error)
/// server.restart()                              // a crash: staged writes are lost, the store stays
/// ```
///
/// With `autoCommit` (the default) every call ends with the group commits it caused, so a
/// push's PushAck is in the next ``drain(_:)``. Without it, ``commit(failing:)`` runs one group
/// commit when the simulator decides — or fails it, as a full disk would.
public final class SynchronousServer {
    /// What a connection received.
    public enum Output: Sendable, Equatable {
        /// One encoded `Frame`.
        case frame([UInt8])
        /// The server closed the connection with this error (its Error frame came just before).
        case closed(ProtocolError)
    }

    /// The durable store (survives ``restart()``).
    public let store: InMemoryServerStore
    /// The registry of the current incarnation.
    public private(set) var registry: SyncRegistry
    /// Whether each call runs the group commits it caused.
    public var autoCommit: Bool
    private let recorder = Recorder()
    private var connections: [ConnectionID: ServerConnection] = [:]
    private let configuration: ServerConfiguration
    private let random: any RandomSource
    private let metrics: ServerMetrics
    private let logger: Logger

    /// Creates a server with an empty (or the given) store.
    @_spi(Randomness)
    public init(
        configuration: ServerConfiguration = ServerConfiguration(), store: InMemoryServerStore = InMemoryServerStore(),
        random: any RandomSource, metrics: ServerMetrics = .disabled,
        logger: Logger, autoCommit: Bool = true
    ) {
        self.configuration = configuration
        self.store = store
        self.random = random
        self.metrics = metrics
        self.logger = logger
        self.autoCommit = autoCommit
        registry = SyncRegistry(configuration: configuration, output: recorder, metrics: metrics, logger: logger)
    }

    /// Opens a connection (from `address`, for the per-address limits); its ServerHello is
    /// waiting in ``drain(_:)``.
    public func connect(nowMs: UInt64, address: String? = nil) -> ConnectionID {
        let id = registry.open(nowMs: nowMs, address: address)
        connections[id] = ServerConnection(id: id, registry: registry, random: random, nowMs: nowMs)
        settle()
        return id
    }

    /// Delivers one binary message from a client.
    public func receive(_ bytes: [UInt8], from connection: ConnectionID, nowMs: UInt64) {
        guard var machine = connections[connection] else { return }
        var read = machine.receive(bytes, nowMs: nowMs)
        while let next = read {
            do {
                read = machine.readCompleted(try store.performNow(next), nowMs: nowMs)
            } catch {
                read = machine.readFailed(error, nowMs: nowMs)
            }
        }
        connections[connection] = machine
        settle()
    }

    /// Delivers a text message (a protocol violation).
    public func receiveText(from connection: ConnectionID, nowMs: UInt64) {
        connections[connection]?.receiveText(nowMs: nowMs)
        settle()
    }

    /// The client went away.
    public func disconnect(_ connection: ConnectionID) {
        connections.removeValue(forKey: connection)?.disconnected()
        settle()
    }

    /// Runs the timers (handshake and idle timeouts).
    public func tick(nowMs: UInt64) {
        registry.tick(nowMs: nowMs)
        settle()
    }

    /// Runs one group commit; `failing` makes the store refuse it. Returns false when nothing
    /// was staged.
    @discardableResult
    public func commit(failing: Bool = false) -> Bool {
        guard let (id, batch) = registry.takeBatch() else { return false }
        do throws(StoreError) {
            if failing { throw .operationFailed("injected commit failure") }
            let conflicts = try store.commitNow(batch)
            registry.finishBatch(id, error: nil, conflicts: conflicts)
        } catch {
            registry.finishBatch(id, error: error)
        }
        return true
    }

    /// Another server process sharing the store committed writes for `account` (the
    /// simulator's stand-in for its announcement, with the version the store holds now; needs
    /// ``ServerConfiguration/sharedStore``).
    public func remoteCommit(_ account: AccountID) {
        registry.remoteCommit(account, version: store.accountNow(account)?.version ?? 0)
        settle()
    }

    /// Runs the fanout reads the registry asks for (a shared store) until none is left, or
    /// for 1,000 rounds (a read that keeps failing is asked for again each time).
    public func runFanoutReads() {
        var reads = registry.takeFanoutReads()
        var rounds = 0
        while !reads.isEmpty, rounds < 1_000 {
            rounds += 1
            for read in reads {
                do throws(StoreError) {
                    let answers = try read.reads.map { storeRead throws(StoreError) in try store.performNow(storeRead) }
                    registry.finishFanoutRead(read, results: .success(answers))
                } catch {
                    registry.finishFanoutRead(read, results: .failure(error))
                }
            }
            reads = registry.takeFanoutReads()
        }
    }

    /// Everything a connection received since the last drain, in order.
    public func drain(_ connection: ConnectionID) -> [Output] {
        recorder.take(connection)
    }

    /// Simulates a crash and restart: connections and staged (unacknowledged) writes vanish,
    /// the store keeps what was committed.
    public func restart() {
        connections.removeAll()
        recorder.reset()
        registry = SyncRegistry(configuration: configuration, output: recorder, metrics: metrics, logger: logger)
    }

    private func settle() {
        for (id, machine) in connections where recorder.isClosed(id) && machine.isClosed {
            connections[id] = nil
            machine.disconnected()
        }
        if autoCommit {
            while commit() {}
            runFanoutReads()
        }
    }
}

/// Collects the core's output per connection.
private final class Recorder: ServerOutput {
    private struct State {
        var outputs: [ConnectionID: [SynchronousServer.Output]] = [:]
        var closed: Set<ConnectionID> = []
    }

    private let state = Mutex(State())

    func send(_ frame: [UInt8], to connection: ConnectionID) {
        state.withLock { s in
            guard !s.closed.contains(connection) else { return }
            s.outputs[connection, default: []].append(.frame(frame))
        }
    }

    func close(_ connection: ConnectionID, with error: ProtocolError) {
        state.withLock { s in
            guard s.closed.insert(connection).inserted else { return }
            s.outputs[connection, default: []].append(.closed(error))
        }
    }

    func commitNeeded() {}

    func take(_ connection: ConnectionID) -> [SynchronousServer.Output] {
        state.withLock { $0.outputs.removeValue(forKey: connection) ?? [] }
    }

    func isClosed(_ connection: ConnectionID) -> Bool { state.withLock { $0.closed.contains(connection) } }

    func reset() { state.withLock { $0 = State() } }
}
