import CloakCrypto
import CloakProtocol
import Foundation

/// A short request/response conversation with the server, used by the account lifecycle flows
/// (create, link, recover, remove) that need answers before continuing: connect, read the
/// ServerHello, optionally authenticate as some key (a device, or the recovery key), then send
/// requests one at a time and wait for their replies.
struct ServerSession {
    let connection: any SyncConnection
    let hello: Cloak_V1_ServerHello
    private var iterator: AsyncStream<[UInt8]>.Iterator
    private var nextID: UInt64 = 1
    let timeout: Duration
    let maxFrameBytes: Int

    nonisolated(nonsending) static func open(transport: any SyncTransport, url: URL, configuration: ClientConfiguration)
        async throws(ClientError) -> ServerSession
    {
        let connection: any SyncConnection
        do { connection = try await transport.connect(to: url) } catch { throw .notConnected }
        var iterator = connection.inbound.makeAsyncIterator()
        let timeout = Duration.milliseconds(Int64(configuration.requestTimeoutMillis))
        let maxBytes = configuration.limits.maxFrameBytes
        guard let first = await Self.next(&iterator, connection: connection, timeout: timeout) else {
            await connection.close()
            throw .notConnected
        }
        guard let frame = try? FrameCodec.decode(first, maxFrameBytes: maxBytes), case .serverHello(let hello) = frame.body,
            hello.versions.contains(ProtocolVersion.current), hello.nonce.count == AuthChallenge.nonceByteCount
        else {
            await connection.close()
            throw .server(.unsupportedVersion(0))
        }
        return ServerSession(connection: connection, hello: hello, iterator: iterator, timeout: timeout, maxFrameBytes: maxBytes)
    }

    private init(connection: any SyncConnection, hello: Cloak_V1_ServerHello, iterator: AsyncStream<[UInt8]>.Iterator,
                 timeout: Duration, maxFrameBytes: Int) {
        self.connection = connection
        self.hello = hello
        self.iterator = iterator
        self.timeout = timeout
        self.maxFrameBytes = maxFrameBytes
    }

    /// Authenticates as `device` of `account` with `key`.
    nonisolated(nonsending) mutating func authenticate(account: AccountID, device: DeviceID, key: Ed25519PrivateKey) async throws(ClientError) {
        var authenticate = Cloak_V1_Authenticate()
        authenticate.version = ProtocolVersion.current
        authenticate.accountID = Data(account.bytes)
        authenticate.deviceID = Data(device.bytes)
        authenticate.signature = Data(
            AuthChallenge.sign(serverNonce: Array(hello.nonce), account: account, device: device, key: key))
        guard case .authResult = try await request(.authenticate(authenticate)) else {
            throw .server(.unexpectedFrame("expected AuthResult"))
        }
    }

    /// Sends a request and returns the body of its reply (or throws the server's error).
    nonisolated(nonsending) mutating func request(_ body: Cloak_V1_Frame.OneOf_Body) async throws(ClientError) -> Cloak_V1_Frame.OneOf_Body {
        let id = nextID
        nextID += 1
        do { try await connection.send(FrameCodec.encode(body, requestID: id)) } catch { throw .notConnected }
        while true {
            guard let bytes = await Self.next(&iterator, connection: connection, timeout: timeout) else { throw .timeout }
            guard let frame = try? FrameCodec.decode(bytes, maxFrameBytes: maxFrameBytes), let reply = frame.body else {
                throw .server(.malformedFrame("undecodable reply"))
            }
            if case .error(let error) = reply, frame.requestID == id || frame.requestID == 0 {
                throw .server(ProtocolError(wireCode: error.code, message: error.message))
            }
            if frame.requestID == id { return reply }
        }
    }

    nonisolated(nonsending) func close() async {
        await connection.close()
    }

    /// The next message, or nil on close or timeout. A timeout closes the connection (which
    /// ends the inbound stream), so a stalled server cannot hang a lifecycle flow.
    nonisolated(nonsending) private static func next(
        _ iterator: inout AsyncStream<[UInt8]>.Iterator, connection: any SyncConnection, timeout: Duration
    ) async -> [UInt8]? {
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            await connection.close()
        }
        defer { watchdog.cancel() }
        return await iterator.next(isolation: #isolation)
    }
}
