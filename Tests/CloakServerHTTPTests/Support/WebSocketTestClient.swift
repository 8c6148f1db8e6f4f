import CloakProtocol
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization

/// A minimal WebSocket client on SwiftNIO for the adapter tests: it sends whatever frames a
/// test builds (including malformed ones) and records everything it receives, and it can stop
/// reading (a slow consumer).
final class WebSocketTestClient {
    enum Event: Equatable {
        case frame(Cloak_V1_Frame)
        case text
        case close(code: UInt16?)
        case ended
    }

    let channel: any Channel
    private let collector: Collector
    private(set) var nonce: [UInt8] = []

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    /// Connects, upgrades to a WebSocket on `path`, and reads ServerHello.
    static func connect(port: Int, path: String = "/v1/sync", receiveBuffer: Int? = nil, tls: Bool = false) async throws
        -> WebSocketTestClient
    {
        let collector = Collector()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        // wss:// with a throwaway certificate: encryption is what these tests need, not trust.
        let tlsContext: NIOSSLContext? =
            if tls {
                try {
                    var configuration = TLSConfiguration.makeClientConfiguration()
                    configuration.certificateVerification = .none
                    return try NIOSSLContext(configuration: configuration)
                }()
            } else { nil }
        let upgraded: EventLoopFuture<Bool> = try await bootstrap.connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                if let tlsContext {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tlsContext, serverHostname: nil))
                }
                let upgrader = NIOTypedWebSocketClientUpgrader<Bool>(
                    maxFrameSize: 64 << 20,
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(CollectorHandler(collector: collector))
                            return true
                        }
                    })
                var headers = HTTPHeaders()
                headers.add(name: "Host", value: "127.0.0.1:\(port)")
                let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
                let configuration = NIOTypedHTTPClientUpgradeConfiguration<Bool>(
                    upgradeRequestHead: head, upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(false) })
                // ServerHello may arrive in the same read as the 101 response: forward those bytes
                // (NIO's default drops them).
                var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                pipeline.leftOverBytesStrategy = .forwardBytes
                return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
            }
        }
        guard try await upgraded.get() else { throw TestClientError.notUpgraded }
        let channel = try await collector.channel()
        let client = WebSocketTestClient(channel: channel, collector: collector)
        if case .frame(let hello) = try await client.next(), let nonce = hello.helloNonce { client.nonce = nonce }
        return client
    }

    /// Sends one binary message.
    func send(_ bytes: [UInt8]) async throws {
        try await write(WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: bytes)))
    }

    /// Sends a text message.
    func sendText(_ text: String) async throws {
        try await write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)))
    }

    /// Sends an arbitrary frame (masked, as clients must).
    func write(_ frame: WebSocketFrame) async throws {
        var masked = frame
        masked.maskKey = WebSocketMaskingKey([0x12, 0x34, 0x56, 0x78])
        try await channel.writeAndFlush(masked)
    }

    /// The next event, or `.ended` after `timeout`.
    func next(timeout: Duration = .seconds(30)) async throws -> Event {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let event = collector.pop() { return event }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TestClientError.timedOut
    }

    /// The next Cloak frame (skipping nothing), or the close/end that came instead.
    func reply(timeout: Duration = .seconds(30)) async throws -> Cloak_V1_Frame {
        switch try await next(timeout: timeout) {
        case .frame(let frame): return frame
        case let other: throw TestClientError.unexpected("\(other)")
        }
    }

    /// The frames up to and including the close, and the close code.
    func untilClosed(timeout: Duration = .seconds(30)) async throws -> (frames: [Cloak_V1_Frame], code: UInt16?) {
        var frames: [Cloak_V1_Frame] = []
        while true {
            switch try await next(timeout: timeout) {
            case .frame(let frame): frames.append(frame)
            case .text: continue
            case .close(let code): return (frames, code)
            case .ended: return (frames, nil)
            }
        }
    }

    /// Stops (or resumes) reading from the socket.
    func setReading(_ on: Bool) async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: on).get()
        if on { channel.read() }
    }

    func close() async {
        try? await channel.close()
    }
}

enum TestClientError: Error {
    case notUpgraded
    case timedOut
    case unexpected(String)
}

/// Events from the channel handler, handed to the test task.
final class Collector: Sendable {
    private struct State {
        var events: [WebSocketTestClient.Event] = []
        var channel: (any Channel)?
    }

    private let state = Mutex(State())

    func push(_ event: WebSocketTestClient.Event) { state.withLock { $0.events.append(event) } }
    func pop() -> WebSocketTestClient.Event? {
        state.withLock { $0.events.isEmpty ? nil : $0.events.removeFirst() }
    }
    func attach(_ channel: any Channel) { state.withLock { $0.channel = channel } }
    func channel() async throws -> any Channel {
        for _ in 0..<1_000 {
            if let channel = state.withLock({ $0.channel }) { return channel }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TestClientError.timedOut
    }
}

/// Reassembles messages and answers the server's close.
final class CollectorHandler: ChannelInboundHandler, @unchecked Sendable {
    // Only touched on the channel's event loop.
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    let collector: Collector
    private var message: [UInt8] = []

    init(collector: Collector) {
        self.collector = collector
    }

    func handlerAdded(context: ChannelHandlerContext) {
        collector.attach(context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation:
            message.append(contentsOf: frame.unmaskedData.readableBytesView)
            if frame.fin {
                if let decoded = decodeServerFrame(message) { collector.push(.frame(decoded)) }
                message = []
            }
        case .text:
            collector.push(.text)
        case .connectionClose:
            var data = frame.unmaskedData
            collector.push(.close(code: data.readInteger(as: UInt16.self)))
            var reply = WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer())
            reply.maskKey = WebSocketMaskingKey([1, 2, 3, 4])
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        collector.push(.ended)
        context.fireChannelInactive()
    }
}
