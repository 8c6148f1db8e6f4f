public import CloakProtocol

/// Identifies one client connection inside a server process (assigned by
/// ``SyncRegistry/open(nowMs:)``; never reused while the process runs).
public struct ConnectionID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The number.
    public let rawValue: UInt64

    /// Wraps a number.
    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// Ordered by number.
    public static func < (lhs: ConnectionID, rhs: ConnectionID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `c<number>`, for logs.
    public var description: String { "c\(rawValue)" }
}

/// Where the sync core puts what it sends: the WebSocket adapter's per-connection queues, or
/// the simulator's recorder. The core calls it synchronously, sometimes while holding the
/// registry's lock — that is what keeps a connection's catch-up → live hand-off and its
/// fanout in cursor order — so an implementation only appends to a queue and returns; it
/// must never call back into the core.
///
/// ```swift
/// final class Queues: ServerOutput {
///     func send(_ frame: [UInt8], to connection: ConnectionID) { queues[connection]?.append(frame) }
///     func close(_ connection: ConnectionID, with error: ProtocolError) { queues[connection]?.finish(error) }
///     func commitNeeded() { committer.wake() }
/// }
/// ```
public protocol ServerOutput: Sendable {
    /// Queues one encoded `Frame` for a connection, after everything queued before.
    func send(_ frame: [UInt8], to connection: ConnectionID)
    /// Queues one live `Deliver` frame (fanout) for each of `connections`, after what each
    /// has queued. Defaults to ``send(_:to:)`` per connection; the HTTP adapter encodes the
    /// WebSocket frame once for all of them and times these for its fanout-latency histogram.
    func deliver(_ frame: [UInt8], to connections: [ConnectionID])
    /// Closes a connection once what is queued has been written. The error frame itself was
    /// queued with ``send(_:to:)`` just before; the WebSocket close code is
    /// ``ProtocolError/webSocketCloseCode``.
    func close(_ connection: ConnectionID, with error: ProtocolError)
    /// Writes are staged: the driver should run a group commit (``SyncRegistry/takeBatch()``)
    /// unless one is running.
    func commitNeeded()
    /// Change sets are committed that the account's live subscribers have not been sent (another
    /// process committed them, or they follow such a gap): the driver should run the reads
    /// ``SyncRegistry/takeFanoutReads()`` hands out. Only a shared store
    /// (``ServerConfiguration/sharedStore``) asks; the default does nothing.
    func fanoutReadNeeded()
}

extension ServerOutput {
    /// Does nothing: a single server process never needs fanout reads.
    public func fanoutReadNeeded() {}
}

extension ProtocolError {
    /// The WebSocket close code for a closing error (PROTOCOL.md §"Transport"): 1009 for an
    /// oversize frame, 1001 for shutdown, 1013 for overload, 1008 for every policy violation.
    public var webSocketCloseCode: UInt16 {
        switch self {
        case .frameTooLarge: 1009
        case .shuttingDown: 1001
        case .slowConsumer, .tooManyConnections: 1013
        default: 1008
        }
    }
}
