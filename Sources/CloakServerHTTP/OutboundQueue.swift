import CloakProtocol
import CloakServer
import Metrics
import NIOCore
import Synchronization

/// One connection's outgoing frames, bounded in bytes (ADV-33), written straight into the
/// connection's NIO channel on its event loop. Every frame reaches the socket through the
/// loop's ``LoopFlusher``, in the order the core produced it: the core hands over without ever
/// waiting (it may hold the registry's lock), and a fanout hands each loop one item for all of
/// its connections, so the committing thread never touches a subscriber's queue. On the loop a
/// frame is written at once while the socket takes it; otherwise it waits in the backlog, which
/// drains when the socket becomes writable again. A peer that falls so far behind that the
/// queue would pass its bound loses what is queued, gets only a SLOW_CONSUMER error, and is
/// closed: memory per connection never grows past the bound.
///
/// Data frames bypass Hummingbird's async writer (one task hop and one actor hop per frame
/// would dominate fanout cost) and the pipeline's frame encoder: they are handed over as
/// complete WebSocket frames (``binaryFrame(_:)``; a fanout encodes one per loop and every
/// subscriber on it shares it) and written from the ``RawFrameWriter`` just below the encoder
/// (above TLS). The closing handshake still goes through Hummingbird's writer, after the last
/// data frame, via `onClose`.
final class OutboundQueue: Sendable {
    private struct State {
        /// Frames that reached the loop while the socket was full (or behind earlier ones).
        var backlog = CircularBuffer<QueuedFrame>(initialCapacity: 2)
        /// What counts against the bound: sends still on their way to the loop, and every
        /// frame in the backlog. A fanout frame counts once it has to wait in the backlog (on
        /// its way it is one buffer shared by the loop's subscribers).
        var bytes = 0
        /// Set when a close is requested: nothing more is accepted.
        var closing: ProtocolError?
        /// The bound was passed: frames still on their way are dropped, and the close writes
        /// SLOW_CONSUMER as the last frame.
        var overflowed = false
        /// The loop reached the close: it is issued once the backlog is written.
        var closeDue = false
        var closeIssued = false
        var ended = false
        /// The socket's writability as the pipeline last reported it (``writabilityChanged(_:)``).
        var socketWritable = true
        var roomWaiters: [CheckedContinuation<Void, Never>] = []

        /// Drops what is queued and marks the close as SLOW_CONSUMER; returns the waiters to
        /// resume (a catch-up waiting for room must not wait for a connection that is over).
        mutating func overflow() -> [CheckedContinuation<Void, Never>] {
            overflowed = true
            closing = .slowConsumer
            return dropQueued()
        }

        /// Drops the backlog and what counts against the bound; returns every room waiter.
        mutating func dropQueued() -> [CheckedContinuation<Void, Never>] {
            backlog.removeAll()
            bytes = 0
            return takeRoomWaiters()
        }

        /// Room waiters to resume now that `bytes` went down.
        mutating func roomsFreed(limit: Int) -> [CheckedContinuation<Void, Never>] {
            bytes <= limit / 2 ? takeRoomWaiters() : []
        }

        private mutating func takeRoomWaiters() -> [CheckedContinuation<Void, Never>] {
            defer { roomWaiters = [] }
            return roomWaiters
        }
    }

    private let state = Mutex(State())
    let channel: any Channel
    /// The ``RawFrameWriter``'s context while it is in the pipeline. Set and read on the
    /// channel's event loop only (the writer's `handlerAdded`/`handlerRemoved` and the
    /// loop-side methods below), which is what makes the unchecked access safe. Kept in the
    /// queue itself rather than in a `NIOLoopBoundBox`: a fanout writes to a thousand queues in
    /// a row, and a separate box object was one more cache miss per delivery (measured).
    nonisolated(unsafe) var writerContext: ChannelHandlerContext?
    let flusher: LoopFlusher
    let limit: Int
    /// Called once when the queue overflows (the peer has stopped reading).
    let onOverflow: @Sendable () -> Void
    /// Called once, on the event loop, after the last frame before a close was written.
    let onClose: @Sendable (ProtocolError) -> Void

    init(
        channel: any Channel, flusher: LoopFlusher, limit: Int,
        onOverflow: @escaping @Sendable () -> Void, onClose: @escaping @Sendable (ProtocolError) -> Void
    ) {
        self.channel = channel
        self.flusher = flusher
        self.limit = limit
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

    /// Queues a complete frame (``binaryFrame(_:)``) after everything handed over before, or
    /// closes with SLOW_CONSUMER when it would pass the bound.
    func enqueue(_ frame: ByteBuffer) {
        let size = frame.readableBytes
        var rooms: [CheckedContinuation<Void, Never>] = []
        let accepted: Bool? = state.withLock { s in
            guard s.closing == nil, !s.ended else { return nil }
            if s.bytes + size > limit {
                rooms = s.overflow()
                return false
            }
            s.bytes += size
            return true
        }
        switch accepted {
        case true?:
            flusher.enqueue(.frame(self, QueuedFrame(bytes: frame, enqueuedAt: nil), counted: true))
        case false?:
            for room in rooms { room.resume() }
            onOverflow()
            flusher.enqueue(.close(self))
        case nil:
            break
        }
    }

    /// Closes after what is queued (the error frame was enqueued just before).
    func close(with error: ProtocolError) {
        let accepted = state.withLock { s in
            guard s.closing == nil, !s.ended else { return false }
            s.closing = error
            return true
        }
        if accepted { flusher.enqueue(.close(self)) }
    }

    /// The connection is over: drop what is queued.
    func end() {
        let rooms = state.withLock { s in
            s.ended = true
            return s.dropQueued()
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
    /// event loop): a writable socket takes the backlog.
    func writabilityChanged(_ writable: Bool) {
        state.withLock { $0.socketWritable = writable }
        guard writable else { return }
        var round = FlushRound()
        writeBacklog(into: &round)
        round.record(flusher.metrics)
    }

    /// A frame reaching the loop (``LoopFlusher``): written now when nothing waits before it
    /// and the socket takes it, otherwise put in the backlog. `counted` frames (sends) were
    /// counted against the bound when queued; a fanout's frames count only in the backlog.
    /// `flush` false leaves the flush to the caller's next frame for this connection, which
    /// passes `unflushed` so that it flushes even when it cannot be written itself.
    func arrive(
        _ frame: QueuedFrame, counted: Bool, flush: Bool = true, unflushed: Bool = false, into round: inout FlushRound
    ) {
        // `assert`: not even the channel's loop is looked up in release builds (per delivery).
        assert(channel.eventLoop.inEventLoop, "OutboundQueue.arrive off its event loop")
        enum Step { case write, wait, overflow, drop }
        var rooms: [CheckedContinuation<Void, Never>] = []
        let size = frame.bytes.readableBytes
        let step: Step = state.withLock { s in
            // An overflow already took the counted bytes away; after a close nothing is sent.
            guard !s.ended, !s.overflowed, !s.closeDue else { return .drop }
            if s.socketWritable, s.backlog.isEmpty {
                if counted {
                    s.bytes -= size
                    rooms = s.roomsFreed(limit: limit)
                }
                return .write
            }
            if !counted {
                if s.bytes + size > limit {
                    rooms = s.overflow()
                    return .overflow
                }
                s.bytes += size
            }
            s.backlog.append(frame)
            return .wait
        }
        for room in rooms { room.resume() }
        guard step == .write else {
            if unflushed { writerContext?.flush() }
            if step == .overflow {
                onOverflow()
                closeArrived(into: &round)
            }
            return
        }
        guard let writer = writerContext else { return }
        writer.write(NIOAny(frame.bytes), promise: nil)
        if flush { writer.flush() }
        round.count(frame)
    }

    /// The close reaching the loop: issued after the backlog (after SLOW_CONSUMER alone when
    /// the bound was passed).
    func closeArrived(into round: inout FlushRound) {
        let proceed = state.withLock { s in
            guard !s.ended, !s.closeDue else { return false }
            s.closeDue = true
            if s.overflowed {
                let error = QueuedFrame(bytes: Self.binaryFrame(FrameCodec.encodeError(.slowConsumer)), enqueuedAt: nil)
                s.backlog.append(error)
                s.bytes = error.bytes.readableBytes
            }
            return true
        }
        if proceed { writeBacklog(into: &round) }
    }

    /// Writes the backlog while the socket takes it, then issues a due close once it is empty.
    private func writeBacklog(into round: inout FlushRound) {
        assert(channel.eventLoop.inEventLoop, "OutboundQueue.writeBacklog off its event loop")
        var wrote = false
        while true {
            var step = BacklogStep()
            state.withLock { s in
                guard !s.ended, s.socketWritable else {
                    // Not writable: resumed by `writabilityChanged(true)`.
                    step.last = true
                    return
                }
                while step.frames.count < 64, let next = s.backlog.popFirst() {
                    s.bytes -= next.bytes.readableBytes
                    step.frames.append(next)
                }
                if s.backlog.isEmpty {
                    step.last = true
                    if s.closeDue, !s.closeIssued, let error = s.closing {
                        s.closeIssued = true
                        step.close = error
                    }
                }
                step.rooms = s.roomsFreed(limit: limit)
            }
            for room in step.rooms { room.resume() }
            // Without the writer the handler was removed: the channel is closing, and what is
            // queued can no longer be delivered.
            let writer = writerContext
            for frame in step.frames {
                writer?.write(NIOAny(frame.bytes), promise: nil)
                round.count(frame)
            }
            wrote = wrote || !step.frames.isEmpty
            if step.last {
                if wrote { writer?.flush() }
                if let close = step.close { onClose(close) }
                return
            }
        }
    }

    /// What one pass of ``writeBacklog(into:)`` took from the backlog under its lock.
    private struct BacklogStep {
        var frames: [QueuedFrame] = []
        var close: ProtocolError?
        var rooms: [CheckedContinuation<Void, Never>] = []
        /// Nothing is left in the backlog (or nothing can be written now).
        var last = false
    }
}
