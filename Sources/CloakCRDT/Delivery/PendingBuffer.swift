/// Operations that arrived before something they reference, indexed by the one id each is
/// waiting for, plus operations deferred because their timestamp is too far ahead. Each held
/// operation keeps its counter span claimed (`claims`), so that another operation reusing
/// those counters is recognised on arrival, in the same order on every device (PROTOCOL's
/// CONVERSATIONS.md §6.2), and not only when the held one is finally applied.
///
/// Waiting is keyed by an exact id: an operation names the ids it depends on, and the
/// operation that creates an id covers it in its counter span, so releasing a span only has
/// to look up the counters it covers (or the waiters of that writer, whichever is fewer).
/// Released operations are re-checked: one may wait again on its next missing id. Nothing
/// here recurses, so a chain of 10^6 held operations releases in a loop (ADV-29).
struct PendingBuffer: Sendable {
    private var slots: [CRDTOperation?] = []
    private var freeSlots: [Int] = []
    private var waiting: [ReplicaID: [UInt64: [Int]]] = [:]
    private var deferred: [Int] = []
    /// Held operation id → its slot.
    private var heldSlots: [OperationID: Int] = [:]
    /// The counters each replica's held operations span (disjoint: a reuse is never held).
    private var claims = ReplicaMap<CounterSet>()
    private(set) var count = 0
    private(set) var bytes = 0

    var isEmpty: Bool { count == 0 }
    var deferredCount: Int { deferred.count }

    func contains(_ id: OperationID) -> Bool { count > 0 && heldSlots[id] != nil }

    /// The held operation with exactly this id, if any.
    func operation(_ id: OperationID) -> CRDTOperation? {
        guard count > 0, let slot = heldSlots[id] else { return nil }
        return slots[slot]
    }

    /// How much of `start ..< start + count` of `replica` held operations span.
    func claimCoverage(replica: ReplicaID, start: UInt64, count: UInt64) -> CounterSet.Coverage {
        guard self.count > 0, let position = claims.position(of: replica) else { return .none }
        return claims.values[position].coverage(start: start, count: count)
    }

    /// The parts of `start ..< start + count` of `replica` that no held operation spans.
    func unclaimedGaps(replica: ReplicaID, start: UInt64, count: UInt64) -> [(start: UInt64, count: UInt64)] {
        guard self.count > 0, let position = claims.position(of: replica) else { return [(start, count)] }
        return claims.values[position].gaps(start: start, count: count)
    }

    /// All held operations, ordered by id (for snapshots).
    var operations: [CRDTOperation] {
        slots.compactMap { $0 }.sorted { $0.id < $1.id }
    }

    static func approximateBytes(of op: CRDTOperation) -> Int {
        switch op.payload {
        case .createMessage(_, _, let text), .insertText(_, _, _, let text):
            return 96 + text.utf8.count
        case .deleteText(_, let spans):
            return 96 + 32 * spans.count
        case .removeReaction(_, let reaction, let observed):
            return 96 + reaction.emoji.utf8.count + reaction.reactor.count + 24 * observed.count
        case .removeConversation(_, let observed), .removeFolder(_, let observed):
            return 96 + 24 * observed.count
        default:
            return 128
        }
    }

    /// Holds `op`; returns false (holding nothing) when the limits would be exceeded.
    mutating func hold(
        _ op: consuming CRDTOperation, waitingFor missing: OperationID?, limits: DeliveryLimits
    ) -> Bool {
        let size = Self.approximateBytes(of: op)
        guard count < limits.pendingOperationsMax, bytes + size <= limits.pendingBytesMax else { return false }
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = op
        } else {
            slot = slots.count
            slots.append(op)
        }
        if let missing {
            waiting[missing.replica, default: [:]][missing.counter, default: []].append(slot)
        } else {
            deferred.append(slot)
        }
        heldSlots[op.id] = slot
        claims.update(op.id.replica, default: CounterSet()) { $0.insert(start: op.id.counter, count: op.counterCount) }
        count += 1
        bytes += size
        return true
    }

    private mutating func release(slot: Int) -> CRDTOperation? {
        guard slot < slots.count, let op = slots[slot] else { return nil }
        slots[slot] = nil
        freeSlots.append(slot)
        heldSlots[op.id] = nil
        if let position = claims.position(of: op.id.replica) {
            claims.modifyValue(at: position) { $0.remove(start: op.id.counter, count: op.counterCount) }
        }
        count -= 1
        bytes -= Self.approximateBytes(of: op)
        if count == 0 {
            slots.removeAll()
            freeSlots.removeAll()
            claims = ReplicaMap()
        }
        return op
    }

    /// Releases every operation waiting for an id in `start ..< start + length` of `replica`.
    mutating func releaseWaiters(replica: ReplicaID, start: UInt64, length: UInt64, into out: inout [CRDTOperation]) {
        guard count > 0, var byCounter = waiting[replica] else { return }
        let end = start &+ length
        var released: [Int] = []
        if UInt64(byCounter.count) <= length {
            for counter in byCounter.keys where counter >= start && counter < end {
                released.append(contentsOf: byCounter.removeValue(forKey: counter) ?? [])
            }
        } else {
            var counter = start
            while counter < end {
                if let found = byCounter.removeValue(forKey: counter) { released.append(contentsOf: found) }
                counter += 1
            }
        }
        waiting[replica] = byCounter.isEmpty ? nil : byCounter
        for slot in released.sorted() {
            if let op = release(slot: slot) { out.append(op) }
        }
    }

    /// Releases deferred operations whose timestamp is now within the skew bound.
    mutating func releaseDue(physicalMillis: UInt64, maxSkewMillis: UInt64, into out: inout [CRDTOperation]) {
        guard !deferred.isEmpty else { return }
        var keep: [Int] = []
        for slot in deferred {
            guard slot < slots.count, let op = slots[slot] else { continue }
            if HybridLogicalClock.isTooFarAhead(
                op.timestamp, physicalMillis: physicalMillis, maxSkewMillis: maxSkewMillis)
            {
                keep.append(slot)
            } else if let released = release(slot: slot) {
                out.append(released)
            }
        }
        deferred = keep
    }
}
