@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakServer
import Foundation
import Synchronization
@_spi(Randomness) import CloakTesting

/// The sync core over a real (async) store, driven the way the WebSocket adapter drives it:
/// each connection's frames and reads in its own task, one group committer for everyone.
final class AsyncDriver: Sendable {
    let registry: SyncRegistry
    let store: any ServerStore
    let output: StreamOutput
    private let loops: Task<Void, Never>

    /// With `configuration.sharedStore` and a store that announces commits, it also listens
    /// for other processes' commits.
    init(store: any ServerStore, configuration: ServerConfiguration = ServerConfiguration()) {
        let output = StreamOutput()
        let registry = SyncRegistry(configuration: configuration, output: output, metrics: .disabled, logger: quietLogger)
        self.output = output
        self.registry = registry
        self.store = store
        loops = Task {
            await withDiscardingTaskGroup { group in
                group.addTask { await StoreLoops.commits(registry: registry, store: store, wakeups: output.commits) }
                group.addTask { await StoreLoops.fanoutReads(registry: registry, store: store, wakeups: output.fanouts) }
                if configuration.sharedStore, let notifier = store as? any CommitNotifier {
                    let listener = Task {
                        await StoreLoops.remoteCommits(
                            registry: registry, notifier: notifier, logger: quietLogger, retryDelay: .milliseconds(50))
                    }
                    group.addTask {
                        for await _ in output.stopped {}
                        listener.cancel()
                        await listener.value
                    }
                }
            }
        }
    }

    /// Stops the loops (the store stays open).
    func stop() async {
        output.finishCommits()
        await loops.value
    }

    /// Opens a connection.
    func connect(seed: UInt64) -> AsyncConnection {
        let id = registry.open(nowMs: 1_000)
        let frames = output.register(id)
        let machine = ServerConnection(id: id, registry: registry, random: DeterministicRandom(seed: seed), nowMs: 1_000)
        return AsyncConnection(machine: machine, store: store, frames: frames)
    }
}

/// One connection: send frames, await replies.
struct AsyncConnection {
    var machine: ServerConnection
    let store: any ServerStore
    var frames: AsyncStream<[UInt8]>.AsyncIterator
    var nonce: [UInt8] = []

    init(machine: ServerConnection, store: any ServerStore, frames: AsyncStream<[UInt8]>) {
        self.machine = machine
        self.store = store
        self.frames = frames.makeAsyncIterator()
    }

    /// Runs one frame through the machine, performing its reads.
    mutating func send(_ bytes: [UInt8], nowMs: UInt64 = 2_000) async {
        var read = machine.receive(bytes, nowMs: nowMs)
        while let next = read {
            do {
                read = machine.readCompleted(try await store.perform(next), nowMs: nowMs)
            } catch {
                read = machine.readFailed(error, nowMs: nowMs)
            }
        }
    }

    /// The next frame received.
    mutating func next() async -> Cloak_V1_Frame? {
        guard let bytes = await frames.next() else { return nil }
        return decodeServerFrame(bytes)
    }

    /// Waits for the reply to `requestID`, skipping other frames.
    mutating func reply(to requestID: UInt64) async -> Cloak_V1_Frame? {
        while let frame = await next() {
            if frame.requestID == requestID { return frame }
        }
        return nil
    }

    /// Reads ServerHello, registers if asked, authenticates.
    mutating func login(_ account: TestAccount, device: Int = 0, register: Bool = false) async -> Bool {
        guard let hello = await next(), let nonce = hello.helloNonce else { return false }
        self.nonce = nonce
        if register {
            await send(Frames.register(account.genesis, id: 1))
            guard case .done = await reply(to: 1)?.body else { return false }
        }
        // INTERNAL is retryable (PROTOCOL.md: "retry the same bytes later"): a server sharing its
        // database with a busy process may find the account moved on while it reads it.
        let authenticate = Frames.authenticate(account: account.account, device: account.devices[device], nonce: nonce, id: 2)
        for attempt in 0..<5 {
            if attempt > 0 { try? await Task.sleep(for: .milliseconds(20 * attempt)) }
            await send(authenticate)
            let answer = await reply(to: 2)
            if case .authResult = answer?.body { return true }
            guard answer?.errorCode == .internal else { return false }
        }
        return false
    }
}

/// A ServerOutput feeding one AsyncStream per connection, and a stream of commit requests.
final class StreamOutput: ServerOutput {
    private let continuations = Mutex<[ConnectionID: AsyncStream<[UInt8]>.Continuation]>([:])
    let commits: AsyncStream<Void>
    private let commitContinuation: AsyncStream<Void>.Continuation
    let fanouts: AsyncStream<Void>
    private let fanoutContinuation: AsyncStream<Void>.Continuation
    let stopped: AsyncStream<Void>
    private let stoppedContinuation: AsyncStream<Void>.Continuation

    init() {
        (commits, commitContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (fanouts, fanoutContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (stopped, stoppedContinuation) = AsyncStream.makeStream(of: Void.self)
    }

    func register(_ id: ConnectionID) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        continuations.withLock { $0[id] = continuation }
        return stream
    }

    func send(_ frame: [UInt8], to connection: ConnectionID) {
        _ = continuations.withLock { $0[connection] }?.yield(frame)
    }

    func close(_ connection: ConnectionID, with error: ProtocolError) {
        continuations.withLock { $0.removeValue(forKey: connection) }?.finish()
    }

    func commitNeeded() { commitContinuation.yield() }

    func fanoutReadNeeded() { fanoutContinuation.yield() }

    /// Ends every loop's stream.
    func finishCommits() {
        commitContinuation.finish()
        fanoutContinuation.finish()
        stoppedContinuation.finish()
    }
}
