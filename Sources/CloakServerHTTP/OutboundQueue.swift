import CloakProtocol
import CloakServer
import Metrics
import NIOCore
import Synchronization

/// One connection's outgoing frames, bounded in bytes (ADV-33), written straight into the
/// connection's NIO channel from its event loop. The core appends without ever waiting (it
/// may hold the registry's lock); a flush on the event loop writes everything queued while the
/// socket is writable and resumes when it becomes writable again. A peer that falls so far
/// behind that the queue would pass its bound loses what is queued, keeps only a SLOW_CONSUMER
/// error, and is closed: memory per connection never grows past the bound.
///
/// Data frames bypass Hummingbird's async writer (one task hop and one actor hop per frame
/// would dominate fanout cost) and the pipeline's frame encoder: they are queued as complete
/// WebSocket frames (``binaryFrame(_:)``; a fanout encodes one and every subscriber shares it)
/// and written from the ``RawFrameWriter`` just below the encoder (above TLS). The closing
/// handshake still goes through Hummingbird's writer, after the last data frame, via `onClose`.
final class OutboundQueue: Sendable {
    private struct State {
        var frames = CircularBuffer<QueuedFrame>(initialCapacity: 2)
        var bytes = 0
        var closing: ProtocolError?
        var closeIssued = false
        var ended = false
        var flushScheduled = false
        /// The socket's writability as the pipeline last reported it (``writabilityChanged(_:)``):
        /// reading it here, under the lock a flush takes anyway, saves a call into the channel
        /// per delivery.
        var socketWritable = true
        var roomWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    let channel: any Channel
    /// The ``RawFrameWriter``'s context once it is in the pipeline (event loop only).
    let rawWriter: NIOLoopBoundBox<ChannelHandlerContext?>
    let flusher: LoopFlusher
    /// The flusher's ``LoopFlusher/index``, read by every fanout.
    let loopIndex: Int
    let limit: Int
    let metrics: ServerMetrics
    /// Called once when the queue overflows (the peer has stopped reading).
    let onOverflow: @Sendable () -> Void
    /// Called once, on the event loop, after the last frame before a close was written.
    let onClose: @Sendable (ProtocolError) -> Void

    init(
        channel: any Channel, flusher: LoopFlusher, limit: Int, metrics: ServerMetrics,
        onOverflow: @escaping @Sendable () -> Void, onClose: @escaping @Sendable (ProtocolError) -> Void
    ) {
        self.channel = channel
        rawWriter = .makeEmptyBox(valueType: ChannelHandlerContext.self, eventLoop: channel.eventLoop)
        self.flusher = flusher
        loopIndex = flusher.index
        self.limit = limit
        self.metrics = metrics
        self.onOverflow = onOverflow
        self.onClose = onClose
    }

    /// A complete unmasked binary WebSocket frame (RFC 6455 §5.2: FIN + opcode 2, then the
    /// payload length in 7, 7+16 or 7+64 bits, big-endian) around `payload`.
    static func binaryFrame(_ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: payload.count + 10)
        buffer.writeInteger(UInt8(0x82))
        switch payload.count {
        case ..<126:
            buffer.writeInteger(UInt8(payload.count))
        case ...0xFFFF:
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(payload.count))
        default:
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(payload.count))
        }
        buffer.writeBytes(payload)
        return buffer
    }

    /// Appends a complete frame (``binaryFrame(_:)``), or closes with SLOW_CONSUMER when it would
    /// pass the bound.
    func enqueue(_ frame: ByteBuffer) {
        if append(frame, enqueuedAt: nil) { scheduleFlush() }
    }

    /// ``enqueue(_:)`` without waking the flusher: returns whether the caller must hand
    /// this queue to ``flusher`` (a fanout wakes each loop once for many queues).
    /// `enqueuedAt` marks a live delivery for the fanout-latency histogram.
    func append(_ frame: ByteBuffer, enqueuedAt: ContinuousClock.Instant?) -> Bool {
        var overflowed = false
        let size = frame.readableBytes
        let schedule: Bool = state.withLock { s in
            guard s.closing == nil, !s.ended else { return false }
            if s.bytes + size > limit {
                overflowed = true
                s.frames.removeAll()
                s.frames.append(QueuedFrame(bytes: Self.binaryFrame(FrameCodec.encodeError(.slowConsumer)), enqueuedAt: nil))
                s.bytes = 0
                s.closing = .slowConsumer
            } else {
                s.frames.append(QueuedFrame(bytes: frame, enqueuedAt: enqueuedAt))
                s.bytes += size
            }
            return Self.claimFlush(&s)
        }
        if overflowed { onOverflow() }
        return schedule
    }

    /// Closes after what is queued (the error frame was enqueued just before).
    func close(with error: ProtocolError) {
        let schedule: Bool = state.withLock { s in
            guard s.closing == nil, !s.ended else { return false }
            s.closing = error
            return Self.claimFlush(&s)
        }
        if schedule { scheduleFlush() }
    }

    /// The connection is over: drop what is queued.
    func end() {
        let rooms = state.withLock { s in
            s.ended = true
            s.frames.removeAll()
            s.bytes = 0
            defer { s.roomWaiters = [] }
            return s.roomWaiters
        }
        for room in rooms { room.resume() }
    }

    /// Whether the server closed (or is closing) the connection.
    var isClosing: Bool { state.withLock { $0.closing != nil || $0.ended } }

    /// Waits until at most half the bound is queued: catch-up reads pace themselves to the
    /// reader instead of overflowing its queue.
    func waitForRoom() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s in
                if s.bytes <= limit / 2 || s.closing != nil || s.ended { return true }
                s.roomWaiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// The socket's writability changed (from the pipeline's writability observer, on the
    /// event loop): a writable socket resumes a flush that stopped for it.
    func writabilityChanged(_ writable: Bool) {
        let schedule = state.withLock { s in
            s.socketWritable = writable
            return writable && Self.claimFlush(&s)
        }
        guard schedule else { return }
        var round = FlushRound()
        flush(into: &round)
        round.record(metrics)
    }

    private static func claimFlush(_ s: inout State) -> Bool {
        guard !s.flushScheduled, !s.frames.isEmpty || (s.closing != nil && !s.closeIssued) else { return false }
        s.flushScheduled = true
        return true
    }

    private func scheduleFlush() {
        flusher.schedule(self)
    }

    /// Writes what is queued while the socket takes it (on the event loop), counting what it
    /// wrote into `round` (the caller records a round's metrics once).
    func flush(into round: inout FlushRound) {
        var wrote = false
        while true {
            var step = FlushStep()
            state.withLock { s in
                guard !s.ended, s.socketWritable else {
                    // Not writable: resumed by `writabilityChanged(true)`.
                    s.flushScheduled = false
                    step.last = true
                    return
                }
                // A fanout's usual case is one frame: it is taken without an array.
                step.first = s.frames.popFirst()
                while step.more.count < 63, let next = s.frames.popFirst() { step.more.append(next) }
                if let first = step.first { s.bytes -= first.bytes.readableBytes }
                for frame in step.more { s.bytes -= frame.bytes.readableBytes }
                if s.frames.isEmpty {
                    // Everything is taken: this round ends with these frames, and whatever is
                    // enqueued next schedules a new round.
                    step.last = true
                    s.flushScheduled = false
                    if let error = s.closing, !s.closeIssued {
                        s.closeIssued = true
                        step.close = error
                    }
                }
                if s.bytes <= limit / 2, !s.roomWaiters.isEmpty {
                    step.rooms = s.roomWaiters
                    s.roomWaiters = []
                }
            }
            for room in step.rooms { room.resume() }
            // Without the writer the handler was removed: the channel is closing, and what is
            // queued can no longer be delivered.
            let writer = rawWriter.value
            if let first = step.first {
                writer?.write(NIOAny(first.bytes), promise: nil)
                round.count(first)
                for frame in step.more {
                    writer?.write(NIOAny(frame.bytes), promise: nil)
                    round.count(frame)
                }
                wrote = true
            }
            if step.last {
                if wrote { writer?.flush() }
                if let close = step.close { onClose(close) }
                return
            }
        }
    }

    /// What one pass of ``flush(into:)`` took from the queue under its lock.
    private struct FlushStep {
        var first: QueuedFrame?
        var more: [QueuedFrame] = []
        var close: ProtocolError?
        var rooms: [CheckedContinuation<Void, Never>] = []
        /// Nothing is left queued (or nothing can be written now): the round ends.
        var last = false
    }
}

/// A complete WebSocket frame, and when a live delivery was queued.
struct QueuedFrame {
    var bytes: ByteBuffer
    var enqueuedAt: ContinuousClock.Instant?
}

/// What a flush round (one event-loop pass over the connections that got frames) wrote, for
/// its metrics: a fanout writes one frame to each of a thousand sockets, and one counter update
/// and one latency observation per round instead of per frame keep the metrics' locks and
/// clock reads out of the per-delivery cost.
struct FlushRound {
    private(set) var frames = 0
    /// When the oldest live delivery written in this round was queued.
    private(set) var oldestLive: ContinuousClock.Instant?

    mutating func count(_ frame: QueuedFrame) {
        frames += 1
        if let queued = frame.enqueuedAt, oldestLive.map({ queued < $0 }) ?? true { oldestLive = queued }
    }

    /// Frames out, and the round's slowest live delivery: from its commit until the round
    /// handed its last frame to the sockets.
    func record(_ metrics: ServerMetrics) {
        guard frames > 0 else { return }
        metrics.framesOut.increment(by: frames)
        if let oldestLive { metrics.fanoutLatency.record(.now - oldestLive) }
    }
}

/// Runs the flushes of every connection of one event loop that got frames, in one task on
/// that loop: a fanout to a thousand connections then costs a couple of event-loop wake-ups,
/// not a thousand.
final class LoopFlusher: Sendable {
    private let loop: any EventLoop
    /// This loop's number among the server's flushers (0, 1, …): a fanout keeps its per-loop
    /// state in an array at this index.
    let index: Int
    private let dirty = Mutex<(queues: [OutboundQueue], scheduled: Bool)>(([], false))

    init(loop: any EventLoop, index: Int) {
        self.loop = loop
        self.index = index
    }

    func schedule(_ queue: OutboundQueue) {
        let wake = dirty.withLock { d in
            d.queues.append(queue)
            defer { d.scheduled = true }
            return !d.scheduled
        }
        if wake { loop.execute { self.drain() } }
    }

    /// Hands over many queues with one lock and at most one wake-up (a fanout).
    func schedule(_ queues: [OutboundQueue]) {
        let wake = dirty.withLock { d in
            d.queues.append(contentsOf: queues)
            defer { d.scheduled = true }
            return !d.scheduled
        }
        if wake { loop.execute { self.drain() } }
    }

    private func drain() {
        while true {
            let queues = dirty.withLock { d in
                defer { d.queues = [] }
                if d.queues.isEmpty { d.scheduled = false }
                return d.queues
            }
            guard !queues.isEmpty else { return }
            var round = FlushRound()
            for queue in queues { queue.flush(into: &round) }
            // Every queue reports to the server's one set of instruments.
            round.record(queues[0].metrics)
        }
    }
}

/// Placed just below the WebSocket frame encoder, so frames written from its context skip the
/// encoder and the async channel's bridge above it yet still pass through TLS and anything else
/// between it and the socket; writes coming down the pipeline pass through it unchanged.
final class RawFrameWriter: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = ByteBuffer
    let slot: NIOLoopBoundBox<ChannelHandlerContext?>

    init(slot: NIOLoopBoundBox<ChannelHandlerContext?>) {
        self.slot = slot
    }

    func handlerAdded(context: ChannelHandlerContext) { slot.value = context }
    func handlerRemoved(context: ChannelHandlerContext) { slot.value = nil }
}

/// Tells a connection's queue when its socket fills up and drains (placed at the end of the
/// pipeline; NIO fires the change synchronously from the write that crossed a watermark).
final class WritabilityObserver: ChannelInboundHandler, Sendable {
    typealias InboundIn = Never
    let queue: OutboundQueue

    init(queue: OutboundQueue) {
        self.queue = queue
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        queue.writabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }
}
