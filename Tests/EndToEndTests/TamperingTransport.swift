import CloakClient
import CloakProtocol
import CloakTransport
import Foundation
import Synchronization

/// A hostile server, as the client sees it: a transport that passes frames to and from the real
/// server but lets a test rewrite, drop or inject what the client receives. Everything a
/// malicious server could send arrives this way.
struct TamperingTransport: SyncTransport {
    let inner: any SyncTransport
    let tamper: @Sendable (Cloak_V1_Frame) -> [Cloak_V1_Frame]

    func connect(to url: URL) async throws -> any SyncConnection {
        let connection = try await inner.connect(to: url)
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let tamper = self.tamper
        Task {
            for await bytes in connection.inbound {
                guard let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 64 << 20) else {
                    continuation.yield(bytes)
                    continue
                }
                for out in tamper(frame) { continuation.yield(FrameCodec.encode(out)) }
            }
            continuation.finish()
        }
        return TamperedConnection(inner: connection, inbound: stream)
    }
}

struct TamperedConnection: SyncConnection {
    let inner: any SyncConnection
    let inbound: AsyncStream<[UInt8]>

    func send(_ bytes: [UInt8]) async throws { try await inner.send(bytes) }
    func close() async { await inner.close() }
}

/// A switch a test flips while the client runs.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isOn: Bool { value.withLock { $0 } }
    func set(_ on: Bool) { value.withLock { $0 = on } }
}
