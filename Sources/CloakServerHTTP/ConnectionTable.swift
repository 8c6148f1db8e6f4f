import CloakProtocol
import CloakServer
import NIOCore
import Synchronization

/// The adapter's ``ServerOutput``: routes the core's frames to each connection's
/// ``OutboundQueue`` and its commit requests to the group committer.
final class ConnectionTable: ServerOutput {
    private let queues = Mutex<[ConnectionID: OutboundQueue]>([:])
    private let flushers = Mutex<[ObjectIdentifier: LoopFlusher]>([:])
    let commitRequests: AsyncStream<Void>
    private let commitContinuation: AsyncStream<Void>.Continuation
    let fanoutRequests: AsyncStream<Void>
    private let fanoutContinuation: AsyncStream<Void>.Continuation

    init() {
        // One pending wake-up is enough: the committer (and the fanout reader) drains
        // everything waiting when it runs.
        (commitRequests, commitContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (fanoutRequests, fanoutContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The flusher of an event loop (one per loop).
    func flusher(for loop: any EventLoop) -> LoopFlusher {
        flushers.withLock { f in
            let key = ObjectIdentifier(loop as AnyObject)
            if let existing = f[key] { return existing }
            let flusher = LoopFlusher(loop: loop, index: f.count)
            f[key] = flusher
            return flusher
        }
    }

    func register(_ id: ConnectionID, _ queue: OutboundQueue) {
        queues.withLock { $0[id] = queue }
    }

    func remove(_ id: ConnectionID) {
        queues.withLock { $0.removeValue(forKey: id) }?.end()
    }

    /// Connections whose handler has not finished yet.
    var openCount: Int { queues.withLock { $0.count } }

    func send(_ frame: [UInt8], to connection: ConnectionID) {
        queues.withLock { $0[connection] }?.enqueue(OutboundQueue.binaryFrame(frame))
    }

    /// A fanout: the WebSocket frame is encoded once per event loop (ByteBuffers are shared
    /// copy-on-write; one copy per loop keeps the reference count every write touches on one
    /// core) and each loop's flusher is woken once per ``scheduleChunk`` queues, so the loops
    /// start writing while the rest are still being queued.
    func deliver(_ frame: [UInt8], to connections: [ConnectionID]) {
        let targets = queues.withLock { q in connections.compactMap { q[$0] } }
        guard !targets.isEmpty else { return }
        let now = ContinuousClock.now
        // Indexed by the loop's ``LoopFlusher/index``: a lookup per subscriber, no search.
        var loops: [(buffer: ByteBuffer, dirty: [OutboundQueue])?] = []
        for queue in targets {
            let index = queue.loopIndex
            if index >= loops.count { loops.append(contentsOf: repeatElement(nil, count: index + 1 - loops.count)) }
            if loops[index] == nil { loops[index] = (OutboundQueue.binaryFrame(frame), []) }
            guard queue.append(loops[index]!.buffer, enqueuedAt: now) else { continue }
            loops[index]!.dirty.append(queue)
            if loops[index]!.dirty.count == Self.scheduleChunk {
                queue.flusher.schedule(loops[index]!.dirty)
                loops[index]!.dirty.removeAll(keepingCapacity: true)
            }
        }
        for case let loop? in loops where !loop.dirty.isEmpty { loop.dirty[0].flusher.schedule(loop.dirty) }
    }

    /// How many queues a fanout hands a loop's flusher at a time.
    static let scheduleChunk = 64

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
