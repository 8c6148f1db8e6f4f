import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// The fanout phase's workload on a server with nothing in it but SwiftNIO: a child process
/// (``FanoutFloorServer``) on the same two event loops relays every byte one connection sends
/// as one 1,320-byte write to each of the other 999 (a fanout frame's size), and this process
/// drives and drains it exactly as the fanout phase drives the real server (25 pushes a
/// second, 200 pushes). The child's CPU per delivery is what any SwiftNIO server pays here for
/// the read, the event-loop hand-off, the channel write and flush and the kernel's loopback
/// send; the real server's `fanout.server_cpu_per_delivery` minus this is Cloak's own cost.
enum FanoutFloor {
    static let receivers = 999
    static let pushes = 200
    static let frameBytes = 1_320

    /// Server CPU µs per delivery of the bare relay, and the deliveries counted.
    static func measure(receivers: Int = receivers, pushes: Int = pushes) async throws -> (Double, Int) {
        let child = try await ChildServer.start(arguments: ["server", "--floor-child"])
        do {
            let result = try await drive(child, receivers: receivers, pushes: pushes)
            await child.stop()
            return result
        } catch {
            await child.stop()
            throw error
        }
    }

    private static func drive(_ child: ChildServer, receivers: Int, pushes: Int) async throws -> (Double, Int) {
        let group = MultiThreadedEventLoopGroup.singleton
        let received = ItemCount()
        func connect() async throws -> any Channel {
            try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Drain(received)) }
                }
                .connect(host: "127.0.0.1", port: child.port).get()
        }
        let pusher = try await connect()
        var sockets: [any Channel] = []
        for _ in 0..<receivers { sockets.append(try await connect()) }
        // A connection joins the relay when the child accepts it: give it time to accept them all
        // (a receiver it missed shows as missing deliveries in the result).
        try await Task.sleep(for: .milliseconds(500))
        let expected = receivers * pushes * frameBytes
        let cpu = child.cpuSeconds
        for _ in 0..<pushes {
            try await pusher.writeAndFlush(ByteBuffer(bytes: [1]))
            try await Task.sleep(for: .milliseconds(40))
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while received.value < expected, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let used = child.cpuSeconds - cpu
        let deliveries = received.value / frameBytes
        for socket in sockets + [pusher] { try? await socket.close() }
        return (used / Double(max(deliveries, 1)) * 1e6, deliveries)
    }

    /// Counts what a receiver reads, and drops it.
    private final class Drain: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let count: ItemCount

        init(_ count: ItemCount) {
            self.count = count
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            count.add(unwrapInboundIn(data).readableBytes)
        }
    }
}

/// The floor's child: a SwiftNIO server with no protocol at all. Whatever one connection
/// sends, every other connection gets one 1,320-byte frame, written as Cloak's fanout writes
/// (one buffer per event loop, one hand-off per loop, a write and a flush per connection).
enum FanoutFloorServer {
    static func serve() async throws -> Never {
        let group = MultiThreadedEventLoopGroup.singleton
        let registry = Registry()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4_096)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Relay(registry))
                    registry.add(channel)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        FileHandle.standardOutput.write(Data("listening \(channel.localAddress?.port ?? 0)\n".utf8))
        while true { try await Task.sleep(for: .seconds(3_600)) }
    }

    /// Every connection, by event loop.
    final class Registry: Sendable {
        private let channels = Mutex<[ObjectIdentifier: (loop: any EventLoop, channels: [any Channel])]>([:])

        func add(_ channel: any Channel) {
            channels.withLock { $0[ObjectIdentifier(channel.eventLoop as AnyObject), default: (channel.eventLoop, [])].channels.append(channel) }
        }

        func fanOut(from origin: ObjectIdentifier) {
            let loops = channels.withLock { Array($0.values) }
            for (loop, channels) in loops {
                let frame = ByteBuffer(repeating: 0x78, count: FanoutFloor.frameBytes)
                loop.execute {
                    for channel in channels where ObjectIdentifier(channel) != origin {
                        channel.write(frame, promise: nil)
                        channel.flush()
                    }
                }
            }
        }
    }

    private final class Relay: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let registry: Registry

        init(_ registry: Registry) {
            self.registry = registry
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            registry.fanOut(from: ObjectIdentifier(context.channel))
        }
    }
}
