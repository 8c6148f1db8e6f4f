@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakServer
@_spi(Randomness) import CloakSimulation
import Foundation
import Logging
@_spi(Randomness) import CloakTesting

/// A test client of the in-process ``SynchronousServer``: sends frames, returns what came back.
final class CoreClient {
    let server: SynchronousServer
    let id: ConnectionID
    private(set) var nonce: [UInt8] = []
    private(set) var closedWith: ProtocolError?

    init(_ server: SynchronousServer, nowMs: UInt64 = 1_000, address: String? = nil) {
        self.server = server
        id = server.connect(nowMs: nowMs, address: address)
        for frame in frames(server.drain(id)) { if let nonce = frame.helloNonce { self.nonce = nonce } }
    }

    /// Sends one frame and returns the frames received afterwards.
    @discardableResult
    func send(_ bytes: [UInt8], nowMs: UInt64 = 2_000) -> [Cloak_V1_Frame] {
        server.receive(bytes, from: id, nowMs: nowMs)
        return receive()
    }

    /// Frames received since the last call.
    func receive() -> [Cloak_V1_Frame] {
        frames(server.drain(id))
    }

    /// Registers (if asked) and authenticates as `device` of `account`; returns the AuthResult.
    @discardableResult
    func login(_ account: TestAccount, device: Int = 0, register: Bool = false) -> Cloak_V1_AuthResult? {
        if register {
            let reply = send(Frames.register(account.genesis, id: 1))
            guard case .done = reply.first?.body else { return nil }
        }
        let reply = send(Frames.authenticate(account: account.account, device: account.devices[device], nonce: nonce))
        if case .authResult(let result) = reply.first?.body { return result }
        return nil
    }

    private func frames(_ outputs: [SynchronousServer.Output]) -> [Cloak_V1_Frame] {
        var out: [Cloak_V1_Frame] = []
        for output in outputs {
            switch output {
            case .frame(let bytes):
                if let frame = decodeServerFrame(bytes) { out.append(frame) }
            case .closed(let error):
                closedWith = error
            }
        }
        return out
    }
}

/// A logger that drops everything (tests assert on frames, not logs).
let quietLogger: Logger = {
    var logger = Logger(label: "cloak.server.test", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

/// A synchronous server over a fresh in-memory store.
func makeServer(
    _ configure: (inout ServerConfiguration) -> Void = { _ in }, store: InMemoryServerStore = InMemoryServerStore(),
    autoCommit: Bool = true, seed: UInt64 = 1
) -> SynchronousServer {
    var configuration = ServerConfiguration()
    configure(&configuration)
    return SynchronousServer(
        configuration: configuration, store: store, random: DeterministicRandom(seed: seed), logger: quietLogger,
        autoCommit: autoCommit)
}
