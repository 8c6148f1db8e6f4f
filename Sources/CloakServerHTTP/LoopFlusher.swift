import CloakProtocol
import CloakServer
import Metrics
import NIOCore
import Synchronization

/// A complete WebSocket frame, and when a live delivery was queued.
struct QueuedFrame {
    var bytes: ByteBuffer
    var enqueuedAt: ContinuousClock.Instant?
}

/// What a flush round (one event-loop pass over what was handed to it) wrote, for its metrics:
/// a fanout writes one frame to each of a thousand sockets, and one counter update and one
/// latency observation per round instead of per frame keep the metrics' locks and clock reads
/// out of the per-delivery cost.
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

/// Everything to write to the connections of one event loop, in the order the core produced
/// it, written by one task on that loop: a fanout to a thousand connections costs the
/// committing thread one hand-over per loop, and each loop a couple of wake-ups.
final class LoopFlusher: Sendable {
    /// One hand-over.
    enum Item: Sendable {
        /// A frame for one connection; `counted` when it was counted against the bound on the way.
        case frame(OutboundQueue, QueuedFrame, counted: Bool)
        /// A fanout: the frame for each of `connections` that is on this loop.
        case fanout(ByteBuffer, [ConnectionID], enqueuedAt: ContinuousClock.Instant)
        /// The connection closes after what was handed over before.
        case close(OutboundQueue)
        /// The connection joins this loop's fanouts.
        case join(ConnectionID, OutboundQueue)
        /// The connection leaves this loop's fanouts.
        case leave(ConnectionID)
    }

    private let loop: any EventLoop
    let metrics: ServerMetrics
    private let pending = Mutex<(items: [Item], scheduled: Bool)>(([], false))
    /// This loop's connections, for fanouts: changed and read only by ``drain()``, on the
    /// loop, so a fanout resolves its targets without a lock. Joins and leaves travel through
    /// the same hand-over as the frames, and a connection joins when it registers, before it
    /// reads its first frame. A fanout can name it only after it subscribed and went live,
    /// which the registry records under its lock, and the fanout is handed over after that:
    /// so the join is always ahead of it here.
    private let members: NIOLoopBoundBox<[ConnectionID: OutboundQueue]>

    init(loop: any EventLoop, metrics: ServerMetrics) {
        self.loop = loop
        self.metrics = metrics
        members = .makeBoxSendingValue([:], eventLoop: loop)
    }

    func add(_ id: ConnectionID, _ queue: OutboundQueue) {
        enqueue(.join(id, queue))
    }

    func remove(_ id: ConnectionID) {
        enqueue(.leave(id))
    }

    /// Hands over one item; the loop is woken unless a drain is already due.
    func enqueue(_ item: Item) {
        let wake = pending.withLock { p in
            p.items.append(item)
            defer { p.scheduled = true }
            return !p.scheduled
        }
        if wake { loop.execute { self.drain() } }
    }

    private func drain() {
        while true {
            let items = pending.withLock { p in
                defer { p.items = [] }
                if p.items.isEmpty { p.scheduled = false }
                return p.items
            }
            guard !items.isEmpty else { return }
            var round = FlushRound()
            var unflushed: OutboundQueue?
            for index in items.indices {
                switch items[index] {
                case .frame(let queue, let frame, let counted):
                    // A run of frames for one connection (catch-up pages, acks) is flushed once.
                    var flush = true
                    if index + 1 < items.count, case .frame(let next, _, _) = items[index + 1], next === queue { flush = false }
                    queue.arrive(frame, counted: counted, flush: flush, unflushed: unflushed === queue, into: &round)
                    unflushed = flush ? nil : queue
                case .fanout(let buffer, let connections, let enqueuedAt):
                    // One pass: each subscriber's queue is touched once, while it is in cache.
                    let frame = QueuedFrame(bytes: buffer, enqueuedAt: enqueuedAt)
                    let mine = members.value
                    for id in connections {
                        mine[id]?.arrive(frame, counted: false, flush: true, into: &round)
                    }
                case .close(let queue):
                    queue.closeArrived(into: &round)
                case .join(let id, let queue):
                    members.value[id] = queue
                case .leave(let id):
                    members.value[id] = nil
                }
            }
            round.record(metrics)
        }
    }
}

/// Placed just below the WebSocket frame encoder, so frames written from its context skip the
/// encoder and the async channel's bridge above it yet still pass through TLS and anything else
/// between it and the socket; writes coming down the pipeline pass through it unchanged.
final class RawFrameWriter: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = ByteBuffer
    let queue: OutboundQueue

    init(queue: OutboundQueue) {
        self.queue = queue
    }

    func handlerAdded(context: ChannelHandlerContext) { queue.writerContext = context }
    func handlerRemoved(context: ChannelHandlerContext) { queue.writerContext = nil }
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
