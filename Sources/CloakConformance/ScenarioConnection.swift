import Foundation
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
import WSClient

/// One WebSocket connection of a scenario (swift-websocket's client): what the server sends is
/// queued as events for the steps to expect, in order; reading can be paused to make the
/// connection a slow consumer.
final class ScenarioConnection: Sendable {
    enum Event: Sendable {
        case binary([UInt8])
        case text
        /// The server's close frame (its status code, nil when it sent none).
        case closed(UInt16?)
        /// The connection ended without a close frame (or could not open).
        case ended
    }

    enum Outgoing: Sendable {
        case binary([UInt8])
        case text(String)
        case close
    }

    private struct State {
        var events: [Event] = []
        var open: Bool?
        var paused = false
    }

    private let state = Mutex(State())
    private let outgoing: AsyncStream<Outgoing>.Continuation

    private init(outgoing: AsyncStream<Outgoing>.Continuation) {
        self.outgoing = outgoing
    }

    /// Connects and waits until the upgrade succeeded (or throws when it did not).
    static func open(url: String, logger: Logger) async throws -> ScenarioConnection {
        let (stream, continuation) = AsyncStream<Outgoing>.makeStream()
        let connection = ScenarioConnection(outgoing: continuation)
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = 64 << 20
        Task {
            do {
                let close = try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) {
                    inbound, outbound, _ in
                    connection.state.withLock { $0.open = true }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await connection.read(inbound) }
                        group.addTask { try await Self.write(stream, to: outbound) }
                        _ = try await group.next()
                        group.cancelAll()
                    }
                }
                connection.push(.closed(close.map { UInt16(webSocketErrorCode: $0.closeCode) }))
            } catch {
                connection.push(.ended)
            }
            connection.state.withLock { if $0.open == nil { $0.open = false } }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            switch connection.state.withLock({ $0.open }) {
            case true?: return connection
            case false?: throw ConformanceFailure("could not open a WebSocket to \(url)")
            case nil: try await Task.sleep(for: .milliseconds(2))
            }
        }
        throw ConformanceFailure("timed out opening a WebSocket to \(url)")
    }

    private func read(_ inbound: WebSocketInboundStream) async throws {
        var messages = inbound.messages(maxSize: 64 << 20).makeAsyncIterator()
        while true {
            while state.withLock({ $0.paused }) { try await Task.sleep(for: .milliseconds(5)) }
            guard let message = try await messages.next() else { return }
            switch message {
            case .binary(let buffer): push(.binary(Array(buffer: buffer)))
            case .text: push(.text)
            }
        }
    }

    private static func write(_ stream: AsyncStream<Outgoing>, to outbound: WebSocketOutboundWriter) async throws {
        for await message in stream {
            switch message {
            case .binary(let bytes): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
            case .text(let text): try await outbound.write(.text(text))
            case .close:
                try await outbound.close(.normalClosure, reason: nil)
                return
            }
        }
    }

    private func push(_ event: Event) {
        state.withLock { $0.events.append(event) }
    }

    func send(_ message: Outgoing) {
        outgoing.yield(message)
    }

    func setPaused(_ paused: Bool) {
        state.withLock { $0.paused = paused }
    }

    /// The next event, or nil after `timeout`.
    func next(timeout: Duration) async throws -> Event? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let event = state.withLock { $0.events.isEmpty ? nil : $0.events.removeFirst() }
            if let event { return event }
            guard ContinuousClock.now < deadline else { return nil }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    func close() {
        outgoing.yield(.close)
        outgoing.finish()
    }
}
