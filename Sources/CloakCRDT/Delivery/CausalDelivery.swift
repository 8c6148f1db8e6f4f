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
        applied[id.replica]?.contains(id.counter) ?? false
    }

    /// One past the highest counter of `replica` this document has seen (applied or held is
    /// not distinguished for held ops; applied is what matters for reuse).
    func counterFloor(for replica: ReplicaID) -> UInt64 {
        applied[replica]?.upperBound ?? 0
    }

    mutating func markApplied(_ op: CRDTOperation) {
        applied.update(op.id.replica, default: CounterSet()) { $0.insert(start: op.id.counter, count: op.counterCount) }
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
/// handles idempotence, holding, deferral, overflow and releasing; the document says whether
/// an operation is ready and executes it.
protocol CausalDocument {
    var delivery: DeliveryState { get set }
    /// Checks dependencies without mutating.
    func readiness(of op: CRDTOperation, physicalMillis: UInt64) -> Readiness
    /// Applies a ready operation; returns a reason instead when a check that needs the
    /// document's content fails, having changed nothing.
    mutating func execute(_ op: CRDTOperation) -> RejectionReason?
    /// Splits an insert whose counters were partly applied into the pieces not yet applied;
    /// nil when the operation is not an insert (it is then re-applied whole, idempotently).
    func unappliedPieces(of op: CRDTOperation, gaps: [(start: UInt64, count: UInt64)]) -> [CRDTOperation]?
}

extension CausalDocument {
    /// Applies `ops` in any order, idempotently, holding what cannot be applied yet.
    mutating func deliver(_ ops: [CRDTOperation], physicalMillis: UInt64) -> ApplyReport {
        var report = ApplyReport()
        var queue: [CRDTOperation] = []
        delivery.pending.releaseDue(
            physicalMillis: physicalMillis, maxSkewMillis: delivery.limits.maxSkewMillis, into: &queue)
        drain(&queue, physicalMillis: physicalMillis, report: &report)
        for op in ops {
            process(op, physicalMillis: physicalMillis, report: &report, queue: &queue)
            if !queue.isEmpty { drain(&queue, physicalMillis: physicalMillis, report: &report) }
        }
        report.pendingCount = delivery.pending.count
        return report
    }

    private mutating func drain(_ queue: inout [CRDTOperation], physicalMillis: UInt64, report: inout ApplyReport) {
        while let op = queue.popLast() {
            process(op, physicalMillis: physicalMillis, report: &report, queue: &queue)
        }
    }

    private mutating func process(
        _ op: CRDTOperation, physicalMillis: UInt64, report: inout ApplyReport, queue: inout [CRDTOperation]
    ) {
        guard op.counterCount > 0 else {
            report.rejected.append(Rejection(id: op.id, reason: .emptyOperation))
            return
        }
        let (last, overflow) = op.id.counter.addingReportingOverflow(op.counterCount - 1)
        guard !overflow, last <= IdentifierLimits.counterMax else {
            report.rejected.append(Rejection(id: op.id, reason: .counterOutOfRange))
            return
        }
        if let set = delivery.applied[op.id.replica] {
            switch set.coverage(start: op.id.counter, count: op.counterCount) {
            case .full:
                report.duplicates += 1
                return
            case .partial:
                let gaps = set.gaps(start: op.id.counter, count: op.counterCount)
                if let pieces = unappliedPieces(of: op, gaps: gaps) {
                    queue.append(contentsOf: pieces)
                    return
                }
            case .none:
                break
            }
        }
        if delivery.pending.contains(op.id) {
            report.duplicates += 1
            return
        }
        switch readiness(of: op, physicalMillis: physicalMillis) {
        case .missing(let id):
            hold(op, waitingFor: id, report: &report)
        case .tooFarAhead:
            hold(op, waitingFor: nil, report: &report)
        case .invalid(let reason):
            reject(op, reason, report: &report, queue: &queue)
        case .ready:
            if let reason = execute(op) {
                reject(op, reason, report: &report, queue: &queue)
            } else {
                delivery.markApplied(op)
                report.noteApplied(op)
                delivery.pending.releaseWaiters(
                    replica: op.id.replica, start: op.id.counter, length: op.counterCount, into: &queue)
            }
        }
    }

    private mutating func hold(_ op: CRDTOperation, waitingFor id: OperationID?, report: inout ApplyReport) {
        if delivery.pending.hold(op, waitingFor: id, limits: delivery.limits) {
            report.held.append(op.id)
        } else {
            report.overflowed.append(op.id)
        }
    }

    /// A refused operation still consumes its counters, so that operations referencing it
    /// are refused deterministically instead of waiting forever.
    private mutating func reject(
        _ op: CRDTOperation, _ reason: RejectionReason, report: inout ApplyReport, queue: inout [CRDTOperation]
    ) {
        report.rejected.append(Rejection(id: op.id, reason: reason))
        delivery.markApplied(op)
        delivery.pending.releaseWaiters(
            replica: op.id.replica, start: op.id.counter, length: op.counterCount, into: &queue)
    }

    /// `.missing` for the first id of `span` not applied yet, else `.ready`.
    func readiness(ofSpan start: OperationID, count: UInt64) -> Readiness {
        guard let set = delivery.applied[start.replica] else { return .missing(start) }
        if let missing = set.firstMissing(start: start.counter, count: count) {
            return .missing(OperationID(replica: start.replica, counter: missing))
        }
        return .ready
    }
}
