import CloakProtocol
import CloakServer
import NIOCore
import Synchronization

/// The adapter's ``ServerOutput``: routes the core's frames to each connection's
/// ``OutboundQueue`` and its commit requests to the group committer.
final class ConnectionTable: ServerOutput {
    private let queues = Mutex<[ConnectionID: OutboundQueue]>([:])
    private let flushers = Mutex<[ObjectIdentifier: LoopFlusher]>([:])
    // The last frame encoded as a WebSocket frame: a fanout hands the same frame to every
    // subscriber, and ByteBuffers are shared copy-on-write, so it is encoded once per event
    // loop, not per connection. One copy per loop keeps the buffer's reference count, touched
    // by every write, on one core (shared by all loops it bounced between them on each write).
    // Holding the array keeps its storage (the cache key) from being reused.
    private let lastFrame = Mutex<(array: [UInt8], buffers: [(loop: ObjectIdentifier, buffer: ByteBuffer)])?>(nil)
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
            let flusher = LoopFlusher(loop: loop)
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
        queues.withLock { $0[connection] }?.enqueue(OutboundQueue.binaryFrame(frame), live: false)
    }

    func deliver(_ frame: [UInt8], to connection: ConnectionID) {
        guard let queue = queues.withLock({ $0[connection] }) else { return }
        queue.enqueue(buffer(for: frame, on: queue.flusher), live: true)
    }

    private func buffer(for frame: [UInt8], on flusher: LoopFlusher) -> ByteBuffer {
        let loop = ObjectIdentifier(flusher)
        return lastFrame.withLock { last in
            if let cached = last, cached.array.count == frame.count,
                cached.array.withUnsafeBufferPointer({ $0.baseAddress }) == frame.withUnsafeBufferPointer({ $0.baseAddress })
            {
                if let hit = cached.buffers.first(where: { $0.loop == loop }) { return hit.buffer }
            } else {
                last = (frame, [])
            }
            let buffer = OutboundQueue.binaryFrame(frame)
            last?.buffers.append((loop, buffer))
            return buffer
        }
    }

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
