import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing

/// SIGHUP re-reads the TLS certificate and key: new handshakes present the new certificate,
/// connections already open stay open.
@Suite(.timeLimit(.minutes(2))) struct TLSReloadTests {
    @Test func sighupServesTheNewCertificateWithoutDroppingConnections() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        try makeTestCertificate(commonName: "first", cert: cert, key: key)
        let first = try NIOSSLCertificate.fromPEMFile(cert)[0].toDERBytes()
        let server = try await ServerProcess.start(
            database: "sqlite:" + directory.appendingPathComponent("cloak.sqlite").path,
            extraArguments: ["--tls-cert", cert, "--tls-key", key])
        #expect(try await presentedCertificate(port: server.port) == first)
        let open = try await WebSocketTestClient.connect(port: server.port, tls: true)

        try makeTestCertificate(commonName: "second", cert: cert, key: key)
        let second = try NIOSSLCertificate.fromPEMFile(cert)[0].toDERBytes()
        kill(server.process.processIdentifier, SIGHUP)
        var presented = try await presentedCertificate(port: server.port)
        for _ in 0..<100 where presented != second {
            try await Task.sleep(for: .milliseconds(50))
            presented = try await presentedCertificate(port: server.port)
        }
        #expect(presented == second)
        // The connection opened before the reload still works.
        try await open.send(Frames.ping(7, id: 9))
        guard case .pong(let pong) = try await open.reply().body else {
            Issue.record("no pong on the connection opened before the reload")
            return
        }
        #expect(pong.nonce == 7)
        #expect(server.process.isRunning)
        await open.close()
        await server.terminate()
    }

    /// The DER bytes of the certificate the server presents in a fresh handshake.
    private func presentedCertificate(port: Int) async throws -> [UInt8] {
        let seen = Mutex<[UInt8]>([])
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        let context = try NIOSSLContext(configuration: configuration)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(
                        context: context, serverHostname: nil,
                        customVerificationCallback: { certificates, promise in
                            seen.withLock { $0 = (try? certificates.first?.toDERBytes()) ?? [] }
                            promise.succeed(.certificateVerified)
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        try await channel.closeFuture.get()
        return seen.withLock { $0 }
    }
}
