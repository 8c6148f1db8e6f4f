/// The delivery state every document keeps: which counters of which writer it has applied
/// (idempotence, and "has this dependency arrived?") and what it is holding.
struct DeliveryState: Sendable {
    var applied = ReplicaMap<CounterSet>()
    var pending = PendingBuffer()
    var limits: DeliveryLimits

    init(limits: DeliveryLimits) {
        self.limits = limits
    }

    func isApplied(_ id: OperationID) -> Bool {
        guard let position = applied.position(of: id.replica) else { return false }
        return applied.values[position].contains(id.counter)
    }

    /// One past the highest counter of `replica` this document has seen (applied or held is
    /// not distinguished for held ops; applied is what matters for reuse).
    func counterFloor(for replica: ReplicaID) -> UInt64 {
        counterFloor(at: applied.position(of: replica))
    }

    /// `counterFloor` by the replica's position in `applied` (a local edit looks it up once
    /// for this and for `markApplied`). By position, not `applied[replica]`: that would copy
    /// the set, two arrays retained.
    func counterFloor(at position: Int?) -> UInt64 {
        guard let position else { return 0 }
        return applied.values[position].upperBound
    }

    mutating func markApplied(_ op: CRDTOperation) {
        markApplied(OperationStamp(op), at: applied.position(of: op.id.replica))
    }

    /// `markApplied` with the writer's position in `applied` already looked up (nil: new).
    mutating func markApplied(_ op: OperationStamp, at position: Int?) {
        if let position {
            applied.modifyValue(at: position) { $0.insert(start: op.id.counter, count: op.counterCount) }
        } else {
            var set = CounterSet()
            set.insert(start: op.id.counter, count: op.counterCount)
            applied.append(op.id.replica, set)
        }
    }
}

/// Whether an operation can be applied now.
enum Readiness {
    case ready
    /// Hold until this id has been applied.
    case missing(OperationID)
    /// Hold until local physical time is within the skew bound of the op's timestamp.
    case tooFarAhead
    case invalid(RejectionReason)
}

/// A document that applies operations through the shared causal-delivery loop: the loop
/// handles idempotence, id reuse, holding, deferral, overflow and releasing; the document says
/// whether an operation is ready, executes it, and says whether a repeated one contradicts
/// what it retains.
protocol CausalDocument {
    var delivery: DeliveryState { get set }
    /// Checks dependencies without mutating.
    func readiness(of op: CRDTOperation, physicalMillis: UInt64) -> Readiness
    /// Applies a ready operation; returns a reason instead when a check that needs the
    /// document's content fails, having changed nothing.
    mutating func execute(_ op: consuming CRDTOperation) -> RejectionReason?
    /// Splits an insert whose counters were partly applied into the pieces not yet applied;
    /// nil when the operation is not an insert (it is then re-applied whole, idempotently).
    func unappliedPieces(of op: CRDTOperation, gaps: [(start: UInt64, count: UInt64)]) -> [CRDTOperation]?
    /// Whether an operation whose every counter this document has consumed disagrees with a
    /// fact the document retains about those counters (CONVERSATIONS.md §6.2): then it reuses
    /// ids; otherwise it is a duplicate. Never changes the state, so it may be conservative.
    func contradicts(_ op: CRDTOperation) -> Bool
}

/// What one `apply` call was asked to do besides its operations.
struct DeliveryCall {
    var physicalMillis: UInt64
    /// This device's replica when it re-applies its own operations (see
    /// `ConversationDocument.apply(_:physicalMillis:ownReplica:)`), else nil.
    var ownReplica: ReplicaID?
}

extension CausalDocument {
    /// Applies `ops` in any order, idempotently, holding what cannot be applied yet.
    mutating func deliver(_ ops: [CRDTOperation], physicalMillis: UInt64, ownReplica: ReplicaID? = nil) -> ApplyReport {
        let call = DeliveryCall(physicalMillis: physicalMillis, ownReplica: ownReplica)
        var report = ApplyReport()
        var queue: [CRDTOperation] = []
        delivery.pending.releaseDue(
            physicalMillis: physicalMillis, maxSkewMillis: delivery.limits.maxSkewMillis, into: &queue)
        drain(&queue, call, report: &report)
        report.applied.reserveCapacity(ops.count)
        // Each operation is copied once, here, and then moved, never copied again: lent
        // instead, it would be copied whole (strings and arrays retained) wherever code that
        // mutates the document still reads it.
        for index in ops.indices {
            process(ops[index], call, report: &report, queue: &queue)
            if !queue.isEmpty { drain(&queue, call, report: &report) }
        }
        report.pendingCount = delivery.pending.count
        return report
    }

    private mutating func drain(_ queue: inout [CRDTOperation], _ call: DeliveryCall, report: inout ApplyReport) {
        while let op = queue.popLast() {
            process(op, call, report: &report, queue: &queue)
        }
    }

    private mutating func process(
        _ op: consuming CRDTOperation, _ call: DeliveryCall, report: inout ApplyReport, queue: inout [CRDTOperation]
    ) {
        let stamp = OperationStamp(id: op.id, timestamp: op.timestamp, counterCount: op.counterCount)
        guard stamp.counterCount > 0 else {
            report.rejected.append(Rejection(id: stamp.id, reason: .emptyOperation))
            return
        }
        let (last, overflow) = stamp.id.counter.addingReportingOverflow(stamp.counterCount - 1)
        guard !overflow, last <= IdentifierLimits.counterMax else {
            report.rejected.append(Rejection(id: stamp.id, reason: .counterOutOfRange))
            return
        }
        let appliedPosition = delivery.applied.position(of: stamp.id.replica)
        let consumed: CounterSet.Coverage =
            appliedPosition.map {
                delivery.applied.values[$0].coverage(start: stamp.id.counter, count: stamp.counterCount)
            } ?? .none
        // The common case holds nothing: one stored integer decides it.
        let held: CounterSet.Coverage =
            delivery.pending.count == 0
            ? .none
            : delivery.pending.claimCoverage(
                replica: stamp.id.replica, start: stamp.id.counter, count: stamp.counterCount)
        if consumed != .none || held != .none {
            // Counters met before: the same operation again, or a reuse (CONVERSATIONS.md §6.2).
            if held == .none, let appliedPosition, stamp.id.replica == call.ownReplica {
                if consumed == .full {
                    report.duplicates += 1
                    return
                }
                let gaps = delivery.applied.values[appliedPosition].gaps(
                    start: stamp.id.counter, count: stamp.counterCount)
                if let pieces = unappliedPieces(of: op, gaps: gaps) {
                    queue.append(contentsOf: pieces)
                    return
                }
            } else if isDuplicate(op, consumed: consumed, held: held) {
                report.duplicates += 1
                return
            } else {
                rejectReuse(stamp, report: &report, queue: &queue)
                return
            }
        }
        switch readiness(of: op, physicalMillis: call.physicalMillis) {
        case .missing(let id):
            hold(op, waitingFor: id, report: &report)
        case .tooFarAhead:
            hold(op, waitingFor: nil, report: &report)
        case .invalid(let reason):
            reject(stamp, reason, report: &report, queue: &queue)
        case .ready:
            if let reason = execute(op) {
                reject(stamp, reason, report: &report, queue: &queue)
            } else {
                // Still the writer's position: `applied` only changes here and in `reject`.
                delivery.markApplied(stamp, at: appliedPosition)
                report.noteApplied(stamp)
                delivery.pending.releaseWaiters(
                    replica: stamp.id.replica, start: stamp.id.counter, length: stamp.counterCount, into: &queue)
            }
        }
    }

    /// A repeat that changes nothing: exactly a held operation again, or counters all
    /// consumed by operations this one agrees with.
    private func isDuplicate(_ op: CRDTOperation, consumed: CounterSet.Coverage, held: CounterSet.Coverage) -> Bool {
        switch (consumed, held) {
        case (.none, .full): delivery.pending.operation(op.id) == op
        case (.full, .none): !contradicts(op)
        default: false
        }
    }

    /// Refuses an operation that reuses counters. Nothing of it is applied; its counters that
    /// nothing consumed or holds become consumed, so that what references them is refused
    /// rather than held forever, while a held operation it collided with still applies later.
    private mutating func rejectReuse(_ op: OperationStamp, report: inout ApplyReport, queue: inout [CRDTOperation]) {
        report.rejected.append(Rejection(id: op.id, reason: .reusedOperationID))
        let replica = op.id.replica
        let unconsumed =
            delivery.applied.position(of: replica).map {
                delivery.applied.values[$0].gaps(start: op.id.counter, count: op.counterCount)
            } ?? [(op.id.counter, op.counterCount)]
        for gap in unconsumed {
            for free in delivery.pending.unclaimedGaps(replica: replica, start: gap.start, count: gap.count) {
                let piece = OperationStamp(
                    id: OperationID(replica: replica, counter: free.start), timestamp: op.timestamp,
                    counterCount: free.count)
                delivery.markApplied(piece, at: delivery.applied.position(of: replica))
                delivery.pending.releaseWaiters(replica: replica, start: free.start, length: free.count, into: &queue)
            }
        }
    }

    /// Holds an operation waiting for `id`, or (nil) deferred by the clock-skew rule.
    private mutating func hold(_ op: consuming CRDTOperation, waitingFor id: OperationID?, report: inout ApplyReport) {
        let held = op.id
        let timestamp = op.timestamp
        guard delivery.pending.hold(op, waitingFor: id, limits: delivery.limits) else {
            report.overflowed.append(held)
            return
        }
        if id != nil {
            report.held.append(held)
        } else {
            let due = timestamp.millis &- min(timestamp.millis, delivery.limits.maxSkewMillis)
            report.deferred.append(Deferral(id: held, timestamp: timestamp, dueMillis: due))
        }
    }

    /// A refused operation still consumes its counters, so that operations referencing it
    /// are refused deterministically instead of waiting forever.
    private mutating func reject(
        _ op: OperationStamp, _ reason: RejectionReason, report: inout ApplyReport, queue: inout [CRDTOperation]
    ) {
        report.rejected.append(Rejection(id: op.id, reason: reason))
        delivery.markApplied(op, at: delivery.applied.position(of: op.id.replica))
        delivery.pending.releaseWaiters(
            replica: op.id.replica, start: op.id.counter, length: op.counterCount, into: &queue)
    }

    /// `.missing` for the first id of `span` not applied yet, else `.ready`.
    func readiness(ofSpan start: OperationID, count: UInt64) -> Readiness {
        guard let position = delivery.applied.position(of: start.replica) else { return .missing(start) }
        if let missing = delivery.applied.values[position].firstMissing(start: start.counter, count: count) {
            return .missing(OperationID(replica: start.replica, counter: missing))
        }
        return .ready
    }
}
