public import CloakClient
public import Foundation
public import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
import Synchronization
import WSClient

/// The client's WebSocket transport (swift-websocket's `WebSocketClient` on SwiftNIO): one
/// binary WebSocket message per protobuf frame, `ws://` or `wss://`.
///
/// ```swift
/// let client = try CloakClient.open(directory: dir, server: URL(string: "ws://127.0.0.1:8080/v1/sync")!,
///                                   transport: WebSocketTransport())
/// ```
public struct WebSocketTransport: SyncTransport {
    /// Largest message accepted from the server (PROTOCOL.md §"Limits"); larger ones close the
    /// connection instead of being buffered (ADV-16).
    public var maxMessageBytes: Int
    /// Logger for connection-level events (never payloads).
    public var logger: Logger
    /// How long a connection may take from the TCP connect to the accepted WebSocket upgrade
    /// (TLS and HTTP handshakes included). A peer that accepts the connection and never answers
    /// the handshake (a plain port behind `wss://`, a server that stalls) fails the connect
    /// after this time with a ``TransportError`` of kind ``TransportError/Kind/handshakeTimeout``,
    /// instead of hanging until the caller gives up.
    public var handshakeTimeout: Duration = .seconds(10)
    /// TLS for `wss://`: nil trusts the system's certificate authorities.
    let tls: TLSConfiguration?

    /// Creates the transport; `wss://` trusts the system's certificate authorities.
    public init(maxMessageBytes: Int = 4 << 20, logger: Logger = Logger(label: "cloak.transport")) {
        self.maxMessageBytes = maxMessageBytes
        self.logger = logger
        tls = nil
    }

    /// Creates a transport whose `wss://` connections trust only the certificate authorities in
    /// the PEM file at `caFile` (a server with a private CA), as `curl --cacert` does. The file
    /// is read now, so a wrong path is reported before any connection is tried.
    public init(
        caFile: String, maxMessageBytes: Int = 4 << 20, logger: Logger = Logger(label: "cloak.transport")
    ) throws(TransportError) {
        guard FileManager.default.fileExists(atPath: caFile) else {
            throw TransportError(.caFile, "the CA file \(caFile) does not exist")
        }
        let roots: [NIOSSLCertificate]
        do { roots = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
            throw TransportError(.caFile, "the CA file \(caFile) could not be read as PEM certificates")
        }
        guard !roots.isEmpty else { throw TransportError(.caFile, "the CA file \(caFile) holds no certificate") }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(roots)
        self.tls = tls
        self.maxMessageBytes = maxMessageBytes
        self.logger = logger
    }

    /// Connects and returns once the WebSocket upgrade succeeded, or throws a
    /// ``TransportError`` naming the server and what failed.
    public func connect(to url: URL) async throws -> any SyncConnection {
        let connection = WebSocketConnection()
        let maxBytes = maxMessageBytes
        let logger = logger
        let tls = tls
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = maxBytes
        let attempt = Task {
            do {
                try await WebSocketClient.connect(
                    url: url.absoluteString, configuration: configuration, tlsConfiguration: tls, logger: logger
                ) { inbound, outbound, _ in
                    connection.opened()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await message in inbound.messages(maxSize: maxBytes) {
                                if case .binary(let buffer) = message { connection.deliver(Array(buffer: buffer)) }
                            }
                        }
                        group.addTask {
                            for await bytes in connection.outgoing {
                                try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
                            }
                            try? await outbound.close(.normalClosure, reason: nil)
                        }
                        _ = try await group.next()
                        group.cancelAll()
                    }
                }
                connection.finished(nil)
            } catch {
                logger.debug("websocket ended", metadata: ["error": "\(type(of: error))"])
                connection.finished(error)
            }
        }
        // The WebSocket client bounds only the TCP connect; a peer that accepts and then never
        // answers the TLS or HTTP handshake would keep this call waiting for ever.
        let timeout = handshakeTimeout
        let timer = Task {
            try await Task.sleep(for: timeout)
            connection.abandonIfNotOpen(HandshakeTimedOut(timeout: timeout))
        }
        let failure = await connection.waitUntilOpen()
        timer.cancel()
        if let failure {
            // Best effort: the client has no handle on its channel before the upgrade, so a
            // stalled socket closes when the peer closes it; nothing of it reaches the caller.
            attempt.cancel()
            if let timedOut = failure as? HandshakeTimedOut { throw TransportError(timedOut: timedOut.timeout, url: url) }
            throw TransportError(classifying: failure, url: url)
        }
        return connection
    }
}

/// The handshake did not complete within ``WebSocketTransport/handshakeTimeout``.
struct HandshakeTimedOut: Error {
    let timeout: Duration
}

/// One WebSocket connection as a ``SyncConnection``.
final class WebSocketConnection: SyncConnection {
    private struct State {
        /// True once open; the error (or nil for a clean end) once it ended before opening.
        var outcome: Result<Void, any Error>?
        var waiter: CheckedContinuation<(any Error)?, Never>?
    }

    /// Why a connection ended before it opened without an error of its own.
    private struct ClosedBeforeOpening: Error {}

    let inbound: AsyncStream<[UInt8]>
    private let inboundContinuation: AsyncStream<[UInt8]>.Continuation
    let outgoing: AsyncStream<[UInt8]>
    private let outgoingContinuation: AsyncStream<[UInt8]>.Continuation
    private let state = Mutex(State())

    init() {
        (inbound, inboundContinuation) = AsyncStream.makeStream()
        (outgoing, outgoingContinuation) = AsyncStream.makeStream()
    }

    func opened() { resolve(.success(())) }

    func deliver(_ bytes: [UInt8]) { inboundContinuation.yield(bytes) }

    /// Ends a connection that has not opened yet (the handshake took too long); an open one is
    /// left alone.
    func abandonIfNotOpen(_ error: any Error) {
        // One decision under the lock: an upgrade that completes at the same moment wins or
        // loses as a whole, never an open connection with its streams ended.
        guard resolve(.failure(error)) else { return }
        inboundContinuation.finish()
        outgoingContinuation.finish()
    }

    /// The connection ended (with the error that ended it, if any).
    func finished(_ error: (any Error)?) {
        let failure: any Error = error ?? ClosedBeforeOpening()
        resolve(.failure(failure))
        inboundContinuation.finish()
        outgoingContinuation.finish()
    }

    /// Records the first outcome (and wakes the waiter); false when one was already recorded.
    @discardableResult private func resolve(_ outcome: Result<Void, any Error>) -> Bool {
        let (first, waiter, failure) = state.withLock {
            s -> (Bool, CheckedContinuation<(any Error)?, Never>?, (any Error)?) in
            guard s.outcome == nil else { return (false, nil, nil) }
            s.outcome = outcome
            defer { s.waiter = nil }
            if case .failure(let error) = outcome { return (true, s.waiter, error) }
            return (true, s.waiter, nil)
        }
        waiter?.resume(returning: failure)
        return first
    }

    /// Nil once open, or the error that ended the connection before it opened.
    func waitUntilOpen() async -> (any Error)? {
        await withCheckedContinuation { continuation in
            let known = state.withLock { s -> Result<Void, any Error>? in
                if let outcome = s.outcome { return outcome }
                s.waiter = continuation
                return nil
            }
            switch known {
            case .none: break
            case .success: continuation.resume(returning: nil)
            case .failure(let error): continuation.resume(returning: error)
            }
        }
    }

    func send(_ bytes: [UInt8]) async throws {
        guard case .enqueued = outgoingContinuation.yield(bytes) else { throw ClientError.notConnected }
    }

    func close() async {
        outgoingContinuation.finish()
    }
}
