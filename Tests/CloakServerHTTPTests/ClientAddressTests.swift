import CloakServer
import NIOCore
import Testing

@testable import CloakServerHTTP

/// Which address the per-address limits count: the peer, or the client a trusted load balancer
/// names (the last X-Forwarded-For entry, the one it added; earlier ones a client can forge).
@Suite struct ClientAddressTests {
    @Test func onlyATrustedProxyMayNameTheClient() throws {
        let proxy = try SocketAddress(ipAddress: "10.0.0.2", port: 40_000)
        let client = try SocketAddress(ipAddress: "198.51.100.7", port: 40_001)
        let trusted: Set<String> = ["10.0.0.2"]
        #expect(ClientAddress.resolve(peer: proxy, forwardedFor: "203.0.113.9, 192.0.2.4", trustedProxies: trusted) == "192.0.2.4")
        #expect(ClientAddress.resolve(peer: proxy, forwardedFor: nil, trustedProxies: trusted) == "10.0.0.2")
        #expect(ClientAddress.resolve(peer: client, forwardedFor: "192.0.2.4", trustedProxies: trusted) == "198.51.100.7")
        #expect(ClientAddress.resolve(peer: nil, forwardedFor: "192.0.2.4", trustedProxies: trusted) == nil)
    }

    @Test func theAddressCapAppliesOverTheWebSocket() async throws {
        try await withServer({ $0.sync.maxConnectionsPerAddress = 1 }) { server in
            let first = try await WebSocketTestClient.connect(port: server.port)
            #expect(first.nonce.count == 32)
            // Its first frame is the refusal instead of ServerHello (connect reads it), then 1013.
            let second = try await WebSocketTestClient.connect(port: server.port)
            #expect(second.nonce.isEmpty)
            let (_, code) = try await second.untilClosed()
            #expect(code == 1013)
            await first.close()
        }
    }
}
