@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import CloakServer
@_spi(Randomness) import CloakServerHTTP
@_spi(Randomness) import CloakTesting
import Foundation
import Logging
import Testing

/// A logger that drops everything.
let quietLogger: Logger = {
    var logger = Logger(label: "cloak.http.test", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

/// Runs a server on a free loopback port over a fresh SQLite database for `body`.
func withServer<T: Sendable>(
    _ configure: @Sendable (inout HTTPServerConfiguration) -> Void = { _ in },
    _ body: @Sendable (RunningServer) async throws -> T
) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-http-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = try SQLiteServerStore(path: directory.appendingPathComponent("cloak.sqlite").path)
    try await store.migrate()
    var configuration = HTTPServerConfiguration(port: 0)
    configure(&configuration)
    let result = try await CloakHTTPServer.withRunning(
        configuration: configuration, store: store, logger: quietLogger, random: DeterministicRandom(seed: 99), body)
    await store.close()
    return result
}

extension WebSocketTestClient {
    /// Registers (if asked) and authenticates; returns whether both succeeded.
    func login(_ account: TestAccount, device: Int = 0, register: Bool = false) async throws -> Bool {
        if register {
            try await send(Frames.register(account.genesis, id: 1))
            guard case .done = try await reply().body else { return false }
        }
        try await send(Frames.authenticate(account: account.account, device: account.devices[device], nonce: nonce))
        guard case .authResult = try await reply().body else { return false }
        return true
    }

    /// Registers `account` as its device 0 and uploads the entry that adds device 1: the
    /// pushing side of the fanout tests.
    static func owner(of account: TestAccount, port: Int, tls: Bool = false) async throws -> WebSocketTestClient {
        let owner = try await connect(port: port, tls: tls)
        #expect(try await owner.login(account, register: true))
        try await owner.send(Frames.appendDeviceLog(account.log.entries[1], id: 3))
        #expect(try await owner.reply().requestID == 3)
        return owner
    }

    /// Logs in as device 1 and subscribes from cursor 0 (to `conversations` only, if given);
    /// returns once the empty catch-up said it is caught up.
    static func subscriber(
        of account: TestAccount, port: Int, conversations: [ConversationID] = [], receiveBuffer: Int? = nil,
        tls: Bool = false
    ) async throws -> WebSocketTestClient {
        let subscriber = try await connect(port: port, receiveBuffer: receiveBuffer, tls: tls)
        #expect(try await subscriber.login(account, device: 1))
        try await subscriber.send(Frames.subscribe(after: 0, conversations: conversations, id: 4))
        #expect(try await subscriber.reply().deliverBody?.caughtUp == true)
        return subscriber
    }
}

/// A raw HTTP/1.1 GET on loopback: status code and body.
func httpGet(port: Int, path: String) async throws -> (status: Int, body: String) {
    let handle = try FileHandleSocket(port: port)
    defer { handle.close() }
    try handle.write("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    let response = try await handle.readAll()
    let text = String(decoding: response, as: UTF8.self)
    let statusLine = text.split(separator: "\r\n").first ?? ""
    let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
    let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
    return (status, body)
}

/// A blocking TCP socket (Glibc), enough for one HTTP request in a test.
struct FileHandleSocket {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestClientError.unexpected("socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TestClientError.unexpected("connect") }
    }

    func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard Glibc.write(descriptor, bytes, bytes.count) == bytes.count else { throw TestClientError.unexpected("write") }
    }

    /// Reads to end of stream on a thread of its own (``onOwnThread(_:)``: the in-process server
    /// must be free to answer). A receive timeout bounds it.
    func readAll() async throws -> [UInt8] {
        let descriptor = descriptor
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return try await onOwnThread {
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = Glibc.read(descriptor, &buffer, buffer.count)
                if count < 0 { throw TestClientError.unexpected("read") }
                if count == 0 { return out }
                out += buffer[0..<count]
            }
        }
    }

    func close() { _ = Glibc.close(descriptor) }
}
