/// What one `apply` call did with the operations it was given (and with held operations
/// that became applicable during the call).
///
/// ```swift
/// let report = doc.apply(ops, physicalMillis: now)
/// me.observe(report.newestTimestamp, physicalMillis: now)   // keep the HLC ahead of what we saw
/// if !report.overflowed.isEmpty { scheduleResync() }        // the pending buffer was full
/// for rejection in report.rejected where rejection.reason == .reusedOperationID { alarm(rejection.id) }
/// for deferral in report.deferred { alarm(deferral.id, aheadBy: deferral.timestamp.millis - now) }
/// ```
///
/// The rules behind each list are `Protocol/CONVERSATIONS.md` §6; `rejected` (with
/// `reusedOperationID` in particular) and `deferred` are what a member can provoke by
/// equivocating inside valid signatures (ADV-47), so a client turns them into security
/// events.
public struct ApplyReport: Hashable, Sendable {
    /// Operations applied during this call, in the order they were applied (held operations
    /// released by this call included).
    public internal(set) var applied: [OperationID] = []
    /// Operations that had been applied (or were already held) before: ignored.
    public internal(set) var duplicates: Int = 0
    /// Operations newly held in the pending buffer because an id they depend on has not
    /// been applied yet.
    public internal(set) var held: [OperationID] = []
    /// Operations newly deferred because their timestamp lies more than
    /// `DeliveryLimits.maxSkewMillis` ahead of local physical time (CONVERSATIONS.md §6.4):
    /// held, not applied, until local time comes within the window. Each is reported once,
    /// by the call that deferred it.
    public internal(set) var deferred: [Deferral] = []
    /// Operations refused for good, with the failed check. Their counters are recorded as
    /// consumed (for `reusedOperationID`: those not consumed or held already), so every
    /// replica refuses them identically and operations that build on them are refused too
    /// rather than held forever.
    public internal(set) var rejected: [Rejection] = []
    /// Operations dropped because the pending buffer was full (ADV-29). The document is
    /// still consistent; it is missing these, so the client should fetch them again.
    public internal(set) var overflowed: [OperationID] = []
    /// The newest HLC timestamp among applied operations, to feed `Replica.observe`.
    public internal(set) var newestTimestamp: HLCTimestamp?
    /// Operations still held after this call.
    public internal(set) var pendingCount: Int = 0

    /// An empty report.
    public init() {}

    mutating func noteApplied(_ op: OperationStamp) {
        applied.append(op.id)
        if newestTimestamp.map({ op.timestamp > $0 }) ?? true {
            newestTimestamp = op.timestamp
        }
    }
}

/// One operation deferred by the clock-skew rule.
public struct Deferral: Hashable, Sendable {
    /// The deferred operation.
    public var id: OperationID
    /// Its timestamp (what lies too far ahead).
    public var timestamp: HLCTimestamp
    /// The earliest local physical time (ms) at which it can apply: `timestamp.millis` minus
    /// the skew window.
    public var dueMillis: UInt64

    /// Builds a deferral record.
    public init(id: OperationID, timestamp: HLCTimestamp, dueMillis: UInt64) {
        self.id = id
        self.timestamp = timestamp
        self.dueMillis = dueMillis
    }
}

/// One refused operation and why.
public struct Rejection: Hashable, Sendable {
    /// The refused operation.
    public var id: OperationID
    /// The failed check.
    public var reason: RejectionReason

    /// Builds a rejection record.
    public init(id: OperationID, reason: RejectionReason) {
        self.id = id
        self.reason = reason
    }
}

/// Why an operation was refused. Each check depends only on the operation and on immutable
/// facts about the operations it references, so every replica decides the same way.
public enum RejectionReason: Hashable, Sendable {
    /// A library operation sent to a conversation, or the other way round.
    case wrongDocumentKind
    /// The operation's counters were already used by a different operation of the same
    /// writer in this document (partly, by an operation it does not equal, or contradicting
    /// what the document retains about them): an id names one thing forever
    /// (CONVERSATIONS.md §6.2, ADV-47).
    case reusedOperationID
    /// The operation consumes no counters (an empty insert).
    case emptyOperation
    /// Its counters leave the 48-bit counter space.
    case counterOutOfRange
    /// The document already names the maximum number of distinct replicas.
    case replicaLimitReached
    /// A referenced id exists but is not what the operation needs (a character of another
    /// message, a message id used as a character, …).
    case invalidReference(OperationID)
    /// `selectBranch` names a child whose parent is not the given fork point.
    case parentMismatch
    /// The text or the document would exceed `ConversationLimits`.
    case sizeLimitExceeded
}

/// Limits of the causal delivery machinery (ADV-29), set per document.
///
/// ```swift
/// let doc = ConversationDocument(limits: DeliveryLimits(pendingOperationsMax: 1_000))
/// ```
public struct DeliveryLimits: Hashable, Sendable {
    /// Operations held while waiting for a dependency or for their time.
    public var pendingOperationsMax: Int
    /// Approximate bytes those held operations may occupy.
    public var pendingBytesMax: Int
    /// The bounded-skew rule: timestamps further ahead of physical time are deferred.
    public var maxSkewMillis: UInt64

    /// Defaults: 10,000 held operations, 16 MiB, one hour of skew.
    public init(
        pendingOperationsMax: Int = 10_000,
        pendingBytesMax: Int = 16 << 20,
        maxSkewMillis: UInt64 = HybridLogicalClock.defaultMaxSkewMillis
    ) {
        self.pendingOperationsMax = pendingOperationsMax
        self.pendingBytesMax = pendingBytesMax
        self.maxSkewMillis = maxSkewMillis
    }
}
