/// A hybrid logical clock reading: physical milliseconds plus a logical counter.
///
/// ```swift
/// let a = HLCTimestamp(millis: 1_700_000_000_000, logical: 0)
/// let b = HLCTimestamp(millis: 1_700_000_000_000, logical: 1)
/// assert(a < b)
/// ```
///
/// Ordered by `millis`, then `logical`. Last-writer-wins registers order writes by
/// `(timestamp, writer ReplicaID, counter)`, so equal readings from two devices still have a
/// deterministic winner.
public struct HLCTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Physical part: milliseconds since the Unix epoch (as supplied by the caller's clock).
    public var millis: UInt64
    /// Logical part: orders events within one millisecond and events that outran the clock.
    public var logical: UInt32

    /// Builds a reading from its parts.
    public init(millis: UInt64, logical: UInt32) {
        self.millis = millis
        self.logical = logical
    }

    /// The smallest reading.
    public static let zero = HLCTimestamp(millis: 0, logical: 0)

    /// Orders by `millis`, then `logical`.
    public static func < (lhs: HLCTimestamp, rhs: HLCTimestamp) -> Bool {
        lhs.millis != rhs.millis ? lhs.millis < rhs.millis : lhs.logical < rhs.logical
    }

    /// `millis.logical`.
    public var description: String { "\(millis).\(logical)" }
}

/// Why the clock refused a remote reading.
public enum ClockError: Error, Hashable, Sendable {
    /// The remote reading is more than `maxSkewMillis` ahead of local physical time; the
    /// clock did not move (ADV-28: a device stamping deltas years ahead cannot drag every
    /// other device's clock, and so every later honest write, into the future).
    case remoteTooFarAhead(remoteMillis: UInt64, physicalMillis: UInt64, maxSkewMillis: UInt64)
}

/// The hybrid logical clock of Kulkarni, Demirbas, Madappa, Avva and Leone, "Logical Physical
/// Clocks and Consistent Snapshots in Globally Distributed Databases" (OPODIS 2014), with
/// the physical time passed in by the caller and a bounded-skew rule on receive.
///
/// ```swift
/// var clock = HybridLogicalClock()
/// let t1 = clock.tick(physicalMillis: 1_000)                  // 1000.0
/// try clock.observe(HLCTimestamp(millis: 1_500, logical: 3), physicalMillis: 1_001)
/// let t2 = clock.tick(physicalMillis: 1_002)                  // 1500.4: after what it saw
/// ```
///
/// Timestamps it issues are strictly increasing and never behind the physical clock it is
/// given, and after `observe(_:)` they are greater than the observed reading; that is what
/// lets a write made after seeing another write win its last-writer-wins register.
///
/// Bounded skew (ADV-28): a remote reading more than `maxSkewMillis` (default one hour)
/// ahead of the local physical time is refused with `ClockError.remoteTooFarAhead` and the
/// clock keeps its value. `ConversationDocument.apply` uses the same bound: operations whose
/// timestamp decides an order (message creation, branch choice, metadata writes) and is too
/// far ahead are *deferred*, not applied, until local physical time comes within the bound,
/// and reported (`ApplyReport.deferred`) so the client raises an event. Honest devices
/// therefore never let a far-future write win, and they still converge, because none of them
/// applies it early (Protocol/CONVERSATIONS.md §6.4).
public struct HybridLogicalClock: Hashable, Sendable {
    /// Default bound on how far ahead of local physical time a remote reading may be.
    public static let defaultMaxSkewMillis: UInt64 = 60 * 60 * 1000

    /// The newest reading issued or observed.
    public private(set) var latest: HLCTimestamp
    /// The bounded-skew limit for `observe(_:physicalMillis:)`.
    public var maxSkewMillis: UInt64

    /// A clock that has seen nothing yet, or one restored from a persisted `latest`.
    public init(latest: HLCTimestamp = .zero, maxSkewMillis: UInt64 = HybridLogicalClock.defaultMaxSkewMillis) {
        self.latest = latest
        self.maxSkewMillis = maxSkewMillis
    }

    /// Issues the reading for a local event (HLC "send or local event" rule).
    public mutating func tick(physicalMillis: UInt64) -> HLCTimestamp {
        if physicalMillis > latest.millis {
            latest = HLCTimestamp(millis: physicalMillis, logical: 0)
        } else {
            latest = Self.bump(latest)
        }
        return latest
    }

    /// Merges a remote reading (HLC "receive" rule), refusing readings too far ahead.
    public mutating func observe(_ remote: HLCTimestamp, physicalMillis: UInt64) throws(ClockError) {
        guard !Self.isTooFarAhead(remote, physicalMillis: physicalMillis, maxSkewMillis: maxSkewMillis) else {
            throw .remoteTooFarAhead(
                remoteMillis: remote.millis, physicalMillis: physicalMillis, maxSkewMillis: maxSkewMillis)
        }
        let millis = max(latest.millis, remote.millis, physicalMillis)
        if millis == latest.millis && millis == remote.millis {
            latest = Self.bump(HLCTimestamp(millis: millis, logical: max(latest.logical, remote.logical)))
        } else if millis == latest.millis {
            latest = Self.bump(latest)
        } else if millis == remote.millis {
            latest = Self.bump(remote)
        } else {
            latest = HLCTimestamp(millis: millis, logical: 0)
        }
    }

    /// True when `remote` is more than `maxSkewMillis` ahead of `physicalMillis`.
    public static func isTooFarAhead(_ remote: HLCTimestamp, physicalMillis: UInt64, maxSkewMillis: UInt64) -> Bool {
        let (limit, overflow) = physicalMillis.addingReportingOverflow(maxSkewMillis)
        return !overflow && remote.millis > limit
    }

    /// The next reading after `reading`. When the logical counter is exhausted (2^32 events
    /// in one millisecond) the physical part moves one millisecond ahead instead of wrapping,
    /// which keeps readings strictly increasing at the cost of a tiny, bounded lead.
    private static func bump(_ reading: HLCTimestamp) -> HLCTimestamp {
        if reading.logical == .max {
            return HLCTimestamp(millis: reading.millis &+ 1, logical: 0)
        }
        return HLCTimestamp(millis: reading.millis, logical: reading.logical + 1)
    }
}
