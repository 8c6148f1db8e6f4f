public import CloakClient
@_spi(Randomness) import CloakServer
public import Foundation
import Synchronization

/// The real server core in this process, reached without sockets: every client connection is
/// a pair of in-memory streams into a ``SynchronousServer``. It implements the same
/// ``SyncTransport`` protocol as the WebSocket transport, so the same client code runs against
/// it — in the simulator, and in tests that need many devices cheaply.
///
/// ```swift
/// let network = InMemoryNetwork(server: SynchronousServer(random: rng, logger: logger), clock: clock)
/// let client = try CloakClient.openInMemory(server: network.url, transport: network.transport)
/// ```
public final class InMemoryNetwork: Sendable {
    private struct State {
        var server: SynchronousServer
        var inbound: [ConnectionID: AsyncStream<[UInt8]>.Continuation] = [:]
    }

    private let state: Mutex<State>
    private let clock: any WallClock

    /// The URL clients are opened with (ignored by the transport; any URL works).
    public let url = URL(string: "memory://cloak/v1/sync")!

    /// Wraps a server core.
    public init(server: sending SynchronousServer, clock: any WallClock) {
        state = Mutex(State(server: server))
        self.clock = clock
    }

    /// A transport whose connections reach this network's server.
    public var transport: InMemoryTransport { InMemoryTransport(network: self) }

    /// Runs `body` with the server (e.g. to restart it, or read its store), then delivers
    /// whatever the server sent as a result.
    public func withServer<T>(_ body: (SynchronousServer) throws -> T) rethrows -> T {
        try state.withLock { state in
            let result = try body(state.server)
            Self.route(&state)
            return result
        }
    }

    func open() -> (ConnectionID, AsyncStream<[UInt8]>) {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let now = clock.nowMillis()
        let id = state.withLock { state in
            let id = state.server.connect(nowMs: now)
            state.inbound[id] = continuation
            Self.route(&state)
            return id
        }
        return (id, stream)
    }

    func send(_ bytes: [UInt8], from id: ConnectionID) throws {
        let now = clock.nowMillis()
        try state.withLock { state in
            guard state.inbound[id] != nil else { throw ClientError.notConnected }
            state.server.receive(bytes, from: id, nowMs: now)
            Self.route(&state)
        }
    }

    func close(_ id: ConnectionID) {
        state.withLock { state in
            guard let continuation = state.inbound.removeValue(forKey: id) else { return }
            state.server.disconnect(id)
            continuation.finish()
            Self.route(&state)
        }
    }

    /// Moves every output of the server to its connection's stream (fanout reaches others).
    private static func route(_ state: inout State) {
        for (id, continuation) in state.inbound {
            for output in state.server.drain(id) {
                switch output {
                case .frame(let bytes):
                    continuation.yield(bytes)
                case .closed:
                    continuation.finish()
                    state.inbound[id] = nil
                }
            }
        }
    }
}

/// ``SyncTransport`` over an ``InMemoryNetwork``.
public struct InMemoryTransport: SyncTransport {
    let network: InMemoryNetwork

    /// Opens an in-memory connection (the URL is ignored).
    public func connect(to url: URL) async throws -> any SyncConnection {
        let (id, stream) = network.open()
        return InMemoryConnection(network: network, id: id, inbound: stream)
    }
}

struct InMemoryConnection: SyncConnection {
    let network: InMemoryNetwork
    let id: ConnectionID
    let inbound: AsyncStream<[UInt8]>

    func send(_ bytes: [UInt8]) async throws { try network.send(bytes, from: id) }
    func close() async { network.close(id) }
}
