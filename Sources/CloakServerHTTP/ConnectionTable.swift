import CloakProtocol
import CloakServer
import NIOCore
import Synchronization

/// The adapter's ``ServerOutput``: routes the core's frames to each connection's
/// ``OutboundQueue`` and its commit requests to the group committer.
final class ConnectionTable: ServerOutput {
    private let queues = Mutex<[ConnectionID: OutboundQueue]>([:])
    /// One flusher per event loop, in the order the loops were first seen.
    private let flushers = Mutex<[(loop: ObjectIdentifier, flusher: LoopFlusher)]>([])
    private let metrics: ServerMetrics
    let commitRequests: AsyncStream<Void>
    private let commitContinuation: AsyncStream<Void>.Continuation
    let fanoutRequests: AsyncStream<Void>
    private let fanoutContinuation: AsyncStream<Void>.Continuation

    init(metrics: ServerMetrics) {
        self.metrics = metrics
        // One pending wake-up is enough: the committer (and the fanout reader) drains
        // everything waiting when it runs.
        (commitRequests, commitContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (fanoutRequests, fanoutContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The flusher of an event loop (one per loop).
    func flusher(for loop: any EventLoop) -> LoopFlusher {
        flushers.withLock { f in
            let key = ObjectIdentifier(loop as AnyObject)
            if let existing = f.first(where: { $0.loop == key }) { return existing.flusher }
            let flusher = LoopFlusher(loop: loop, metrics: metrics)
            f.append((key, flusher))
            return flusher
        }
    }

    func register(_ id: ConnectionID, _ queue: OutboundQueue) {
        queues.withLock { $0[id] = queue }
        queue.flusher.add(id, queue)
    }

    func remove(_ id: ConnectionID) {
        guard let queue = queues.withLock({ $0.removeValue(forKey: id) }) else { return }
        queue.flusher.remove(id)
        queue.end()
    }

    /// Connections whose handler has not finished yet.
    var openCount: Int { queues.withLock { $0.count } }

    func send(_ frame: [UInt8], to connection: ConnectionID) {
        queues.withLock { $0[connection] }?.enqueue(OutboundQueue.binaryFrame(frame))
    }

    /// A fanout: each event loop gets the WebSocket frame (encoded once per loop: ByteBuffers
    /// are shared copy-on-write, and one copy per loop keeps the reference count every write
    /// touches on one core) and the list of connections, and picks out its own. The committing
    /// thread thus does the same small amount of work however many subscribers there are; a
    /// delivery to a few connections (a filtered subscription) goes to their loops directly.
    func deliver(_ frame: [UInt8], to connections: [ConnectionID]) {
        let now = ContinuousClock.now
        if connections.count <= Self.directFanout {
            let targets = queues.withLock { q in connections.compactMap { q[$0] } }
            guard !targets.isEmpty else { return }
            let delivery = QueuedFrame(bytes: OutboundQueue.binaryFrame(frame), enqueuedAt: now)
            for queue in targets { queue.flusher.enqueue(.frame(queue, delivery, counted: false)) }
            return
        }
        for (_, flusher) in flushers.withLock({ $0 }) {
            flusher.enqueue(.fanout(OutboundQueue.binaryFrame(frame), connections, enqueuedAt: now))
        }
    }

    /// Up to how many subscribers a fanout is handed to their loops one by one.
    static let directFanout = 4

    func close(_ connection: ConnectionID, with error: ProtocolError) {
        queues.withLock { $0[connection] }?.close(with: error)
    }

    func commitNeeded() {
        commitContinuation.yield()
    }

    /// Ends the commit-request stream (shutdown).
    func finishCommits() {
        commitContinuation.finish()
    }

    func fanoutReadNeeded() {
        fanoutContinuation.yield()
    }

    /// Ends the fanout-request stream (shutdown).
    func finishFanoutReads() {
        fanoutContinuation.finish()
    }
}
