@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakServer
import Logging
import Metrics
import NIOCore
import NIOWebSocket
import WSCore

/// Runs one `/v1/sync` WebSocket: feeds its messages to a ``ServerConnection`` (performing the
/// store reads it asks for, in order), and drains its ``OutboundQueue`` into the socket from a
/// second task, so a slow reader never blocks the core or other connections.
struct SyncConnectionHandler: Sendable {
    let registry: SyncRegistry
    let table: ConnectionTable
    let store: any ServerStore
    let random: any RandomSource
    let logger: Logger

    /// How long a closing connection may take to complete the WebSocket close handshake
    /// before the socket is closed outright (a peer that never reads must not pin it).
    static let closeGrace: TimeAmount = .seconds(5)

    func handle(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: any Channel, address: String?)
        async
    {
        let id = registry.open(nowMs: WallClock.nowMs, address: address)
        let metrics = registry.metrics
        let queue = OutboundQueue(
            channel: channel, flusher: table.flusher(for: channel.eventLoop),
            limit: registry.configuration.maxOutboundQueueBytes,
            onOverflow: {
                metrics.error(.slowConsumer)
                channel.eventLoop.scheduleTask(in: Self.closeGrace) { channel.close(promise: nil) }
            },
            onClose: { error in
                // The close handshake goes through Hummingbird's writer so its state machine
                // knows; a peer that never answers is cut off after the grace period.
                Task { try? await outbound.close(.init(codeNumber: Int(error.webSocketCloseCode)), reason: error.metricName) }
                channel.eventLoop.scheduleTask(in: Self.closeGrace) { channel.close(promise: nil) }
            })
        do {
            try await channel.pipeline.addHandler(WritabilityObserver(queue: queue)).get()
            // Right below the frame encoder: its writes skip the encoder and the async bridge
            // but still pass through TLS, which sits between it and the socket on wss://.
            try await channel.eventLoop.submit {
                let encoder = try channel.pipeline.syncOperations.handler(type: WebSocketFrameEncoder.self)
                try channel.pipeline.syncOperations.addHandler(RawFrameWriter(queue: queue), position: .before(encoder))
                // Frames that passed before it is added keep their key; Hummingbird unmasks those.
                let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)
                try channel.pipeline.syncOperations.addHandler(WebSocketUnmasker(), position: .after(decoder))
            }.get()
        } catch {
            registry.disconnect(id)
            return
        }
        table.register(id, queue)
        var connection = ServerConnection(id: id, registry: registry, random: random, nowMs: WallClock.nowMs)
        await read(inbound, into: &connection, queue: queue)
        connection.disconnected()
        table.remove(id)
    }

    /// Reassembles messages (refusing to buffer past the frame limit) and runs them through
    /// the machine one at a time.
    private func read(_ inbound: WebSocketInboundStream, into connection: inout ServerConnection, queue: OutboundQueue)
        async
    {
        let limit = registry.configuration.limits.maxFrameBytes
        var message: [UInt8] = []
        var size = 0
        var isText = false
        var open = false
        var iterator = inbound.makeAsyncIterator()
        do {
            while let frame = try await iterator.next() {
                guard !queue.isClosing else { break }
                switch frame.opcode {
                case .binary, .text:
                    (message, size, isText, open) = ([], 0, frame.opcode == .text, true)
                case .continuation:
                    guard open else {
                        connection.receiveText(nowMs: WallClock.nowMs)
                        continue
                    }
                }
                size += frame.data.readableBytes
                if !isText, size <= limit { message.append(contentsOf: frame.data.readableBytesView) }
                guard frame.fin else { continue }
                open = false
                if isText {
                    connection.receiveText(nowMs: WallClock.nowMs)
                } else if size > limit {
                    connection.receiveOversize(byteCount: size, nowMs: WallClock.nowMs)
                } else {
                    await process(message, connection: &connection, queue: queue)
                }
                message = []
            }
        } catch {
            logger.debug("WebSocket read ended", metadata: ["error": "\(type(of: error))"])
        }
    }

    private func process(_ message: [UInt8], connection: inout ServerConnection, queue: OutboundQueue) async {
        var read = connection.receive(message, nowMs: WallClock.nowMs)
        while let next = read {
            // Catch-up pages wait for the reader to take the previous ones.
            if case .changeSets = next { await queue.waitForRoom() }
            do {
                let result = try await store.perform(next)
                read = connection.readCompleted(result, nowMs: WallClock.nowMs)
            } catch {
                read = connection.readFailed(error, nowMs: WallClock.nowMs)
            }
        }
    }
}
