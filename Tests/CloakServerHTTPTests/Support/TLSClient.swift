import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One HTTPS GET over NIOSSL without certificate verification (the test certificate is
/// self-signed); returns the raw response.
func tlsGet(port: Int, path: String) async throws -> String {
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.certificateVerification = .none
    let context = try NIOSSLContext(configuration: configuration)
    let received = ReceivedBytes()
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                try channel.pipeline.syncOperations.addHandler(ByteCollector(received: received))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    try await channel.writeAndFlush(ByteBuffer(string: request))
    try await channel.closeFuture.get()
    return String(decoding: received.bytes.withLock { $0 }, as: UTF8.self)
}

private final class ReceivedBytes: Sendable {
    let bytes = Mutex([UInt8]())
}

private final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let received: ReceivedBytes

    init(received: ReceivedBytes) {
        self.received = received
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received.bytes.withLock { $0 += buffer.readableBytesView }
    }
}
