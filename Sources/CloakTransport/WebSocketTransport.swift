public import CloakClient
public import Foundation
public import Logging
import NIOCore
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

    /// Creates the transport.
    public init(maxMessageBytes: Int = 4 << 20, logger: Logger = Logger(label: "cloak.transport")) {
        self.maxMessageBytes = maxMessageBytes
        self.logger = logger
    }

    /// Connects and returns once the WebSocket upgrade succeeded (or throws if it failed).
    public func connect(to url: URL) async throws -> any SyncConnection {
        let connection = WebSocketConnection()
        let maxBytes = maxMessageBytes
        let logger = logger
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = maxBytes
        Task {
            do {
                try await WebSocketClient.connect(url: url.absoluteString, configuration: configuration, logger: logger) {
                    inbound, outbound, _ in
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
            } catch {
                logger.debug("websocket ended", metadata: ["error": "\(type(of: error))"])
            }
            connection.finished()
        }
        guard await connection.waitUntilOpen() else { throw ClientError.notConnected }
        return connection
    }
}

/// One WebSocket connection as a ``SyncConnection``.
final class WebSocketConnection: SyncConnection {
    private struct State {
        var open: Bool?
        var waiter: CheckedContinuation<Bool, Never>?
    }

    let inbound: AsyncStream<[UInt8]>
    private let inboundContinuation: AsyncStream<[UInt8]>.Continuation
    let outgoing: AsyncStream<[UInt8]>
    private let outgoingContinuation: AsyncStream<[UInt8]>.Continuation
    private let state = Mutex(State())

    init() {
        (inbound, inboundContinuation) = AsyncStream.makeStream()
        (outgoing, outgoingContinuation) = AsyncStream.makeStream()
    }

    func opened() { resolve(true) }

    func deliver(_ bytes: [UInt8]) { inboundContinuation.yield(bytes) }

    func finished() {
        resolve(false)
        inboundContinuation.finish()
        outgoingContinuation.finish()
    }

    private func resolve(_ value: Bool) {
        let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            guard s.open == nil else { return nil }
            s.open = value
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: value)
    }

    func waitUntilOpen() async -> Bool {
        await withCheckedContinuation { continuation in
            let known = state.withLock { s -> Bool? in
                if let open = s.open { return open }
                s.waiter = continuation
                return nil
            }
            if let known { continuation.resume(returning: known) }
        }
    }

    func send(_ bytes: [UInt8]) async throws {
        guard case .enqueued = outgoingContinuation.yield(bytes) else { throw ClientError.notConnected }
    }

    func close() async {
        outgoingContinuation.finish()
    }
}
