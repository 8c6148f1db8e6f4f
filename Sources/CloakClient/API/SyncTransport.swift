public import Foundation

/// How a client reaches the server: opens connections that carry binary messages (one
/// protobuf `Frame` each). CloakTransport provides the WebSocket implementation; the simulator
/// provides an in-memory one that talks to the server core directly.
///
/// ```swift
/// let connection = try await transport.connect(to: URL(string: "ws://127.0.0.1:8080/v1/sync")!)
/// try await connection.send(bytes)
/// for await message in connection.inbound { … }
/// ```
public protocol SyncTransport: Sendable {
    /// Opens a connection. Throws if the server cannot be reached.
    func connect(to url: URL) async throws -> any SyncConnection
}

/// One open connection.
public protocol SyncConnection: Sendable {
    /// Messages from the server; finishes when the connection closes.
    var inbound: AsyncStream<[UInt8]> { get }
    /// Sends one message.
    func send(_ bytes: [UInt8]) async throws
    /// Closes the connection (idempotent).
    func close() async
}
