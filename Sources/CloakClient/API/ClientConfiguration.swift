public import CloakProtocol

/// How a client behaves; every field has a documented default.
///
/// ```swift
/// var configuration = ClientConfiguration()
/// configuration.streamBatchMillis = 50
/// let client = try await CloakClient.open(directory: dir, server: url, configuration: configuration)
/// ```
public struct ClientConfiguration: Sendable {
    /// Protocol limits the client enforces on what it receives and sends.
    public var limits: ProtocolLimits
    /// How long streamed text is batched before it is sealed into one change set.
    public var streamBatchMillis: UInt64
    /// Save a conversation's materialised state after this many unsaved change sets (or an
    /// eighth of its messages, if that is more).
    public var saveStateEvery: Int
    /// Upload a snapshot of a conversation after this many change sets since the last one.
    public var snapshotEvery: Int
    /// Most change sets held while waiting for a log entry, key or gap (ADV-29).
    public var maxHeldChangeSets: Int
    /// Most bytes of change sets held (ADV-29); the newest one is always kept.
    public var maxHeldBytes: Int
    /// Reconnect backoff: first delay and cap (full jitter in between).
    public var reconnectMinMillis: UInt64
    /// Reconnect backoff cap.
    public var reconnectMaxMillis: UInt64
    /// Send a ping after this long without traffic.
    public var pingIntervalMillis: UInt64
    /// Give up on a request (and reconnect) after this long without an answer.
    public var requestTimeoutMillis: UInt64
    /// Change sets per push.
    public var pushBatch: Int
    /// Acknowledge the applied cursor to the server (for compaction) at most this often.
    public var ackCursorEveryMillis: UInt64
    /// Change sets known to exist and still missing after this much connected, caught-up time
    /// since they were asked for are reported as withheld (and asked for again).
    public var withheldAfterMillis: UInt64
    /// A device looks for assistants past their expiry (to end their access) at most this often.
    public var assistantExpiryCheckMillis: UInt64 = 1_000

    /// Cloak's defaults.
    public init(
        limits: ProtocolLimits = ProtocolLimits(), streamBatchMillis: UInt64 = 100, saveStateEvery: Int = 200,
        snapshotEvery: Int = 500, maxHeldChangeSets: Int = 10_000, maxHeldBytes: Int = 64 << 20, reconnectMinMillis: UInt64 = 200,
        reconnectMaxMillis: UInt64 = 30_000, pingIntervalMillis: UInt64 = 15_000, requestTimeoutMillis: UInt64 = 30_000,
        pushBatch: Int = 128, ackCursorEveryMillis: UInt64 = 5_000, withheldAfterMillis: UInt64 = 60_000
    ) {
        self.limits = limits
        self.streamBatchMillis = streamBatchMillis
        self.saveStateEvery = saveStateEvery
        self.snapshotEvery = snapshotEvery
        self.maxHeldChangeSets = maxHeldChangeSets
        self.maxHeldBytes = maxHeldBytes
        self.reconnectMinMillis = reconnectMinMillis
        self.reconnectMaxMillis = reconnectMaxMillis
        self.pingIntervalMillis = pingIntervalMillis
        self.requestTimeoutMillis = requestTimeoutMillis
        self.pushBatch = pushBatch
        self.ackCursorEveryMillis = ackCursorEveryMillis
        self.withheldAfterMillis = withheldAfterMillis
    }
}
