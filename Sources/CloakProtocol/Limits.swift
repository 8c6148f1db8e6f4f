/// The limits of the protocol (PROTOCOL.md §"Limits"). A server may configure its own and
/// announces them in `ServerHello.limits`; clients enforce the same frame limit on what they
/// receive (ADV-16), so neither side buffers or parses more than this.
///
/// ```swift
/// var limits = ProtocolLimits()
/// limits.maxFrameBytes = 4 << 20
/// ```
public struct ProtocolLimits: Sendable, Equatable {
    /// Largest WebSocket message (one `Frame`), checked before parsing.
    public var maxFrameBytes: Int
    /// Most change sets in one `Push`.
    public var maxChangeSetsPerPush: Int
    /// Largest serialised change set (and snapshot).
    public var maxChangeSetBytes: Int
    /// Pushes per second per device (token bucket, burst of the same size).
    public var maxPushesPerSecond: Int
    /// Stored bytes per account.
    public var maxAccountBytes: Int64
    /// Change sets per catch-up `Deliver` frame.
    public var maxCatchUpBatch: Int
    /// Largest pairing-mailbox payload.
    public var maxMailboxBytes: Int
    /// Most removal cut-offs in one device-log entry.
    public var maxRemovalCutoffs: Int
    /// Most device-log entries per account.
    public var maxDeviceLogEntries: Int
    /// Most chain heads in one `ChainHeads` reply (a `FetchHeads` asking for more gets this
    /// many, and asks again after the last).
    public var maxHeadsPerReply: Int

    /// Cloak's defaults.
    public init(
        maxFrameBytes: Int = 4 << 20,
        maxChangeSetsPerPush: Int = 256,
        maxChangeSetBytes: Int = 1 << 20,
        maxPushesPerSecond: Int = 200,
        maxAccountBytes: Int64 = 8 << 30,
        maxCatchUpBatch: Int = 1000,
        maxMailboxBytes: Int = 1 << 20,
        maxRemovalCutoffs: Int = 50_000,
        maxDeviceLogEntries: Int = 10_000,
        maxHeadsPerReply: Int = 10_000
    ) {
        self.maxFrameBytes = maxFrameBytes
        self.maxChangeSetsPerPush = maxChangeSetsPerPush
        self.maxChangeSetBytes = maxChangeSetBytes
        self.maxPushesPerSecond = maxPushesPerSecond
        self.maxAccountBytes = maxAccountBytes
        self.maxCatchUpBatch = maxCatchUpBatch
        self.maxMailboxBytes = maxMailboxBytes
        self.maxRemovalCutoffs = maxRemovalCutoffs
        self.maxDeviceLogEntries = maxDeviceLogEntries
        self.maxHeadsPerReply = maxHeadsPerReply
    }

    /// As announced in `ServerHello`.
    public var wire: Cloak_V1_Limits {
        var limits = Cloak_V1_Limits()
        limits.maxFrameBytes = UInt32(clamping: maxFrameBytes)
        limits.maxChangeSetsPerPush = UInt32(clamping: maxChangeSetsPerPush)
        limits.maxChangeSetBytes = UInt32(clamping: maxChangeSetBytes)
        limits.maxPushesPerSecond = UInt32(clamping: maxPushesPerSecond)
        limits.maxAccountBytes = UInt64(clamping: maxAccountBytes)
        limits.maxCatchUpBatch = UInt32(clamping: maxCatchUpBatch)
        return limits
    }
}
