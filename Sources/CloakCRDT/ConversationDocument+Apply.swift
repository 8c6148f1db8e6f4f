extension ConversationDocument: CausalDocument {
    /// Merges operations from other devices (or from this one, again): idempotent,
    /// commutative, associative.
    ///
    /// An operation whose dependencies (parent message, target message, the characters its
    /// text sits between or deletes, the reaction adds it removes) have not been applied is
    /// held in a bounded pending buffer and applied as soon as they are, in this call or a
    /// later one; it is never applied wrongly. Operations whose timestamp orders something
    /// (message creation, branch choice, metadata) and lies more than
    /// `limits.maxSkewMillis` ahead of `physicalMillis` are held until local time catches up
    /// (ADV-28) and reported in `ApplyReport.deferred`. When the buffer is full, further
    /// operations are reported in `ApplyReport.overflowed` and dropped (ADV-29). Operations
    /// that can never apply are reported in `rejected`, among them an operation reusing
    /// counters its writer already spent on something else (`reusedOperationID`, ADV-47):
    /// the rules are `Protocol/CONVERSATIONS.md` §6. The client must check, before calling
    /// this, that each operation's `id.replica` is the authenticated author of the change
    /// set carrying it, and must hand each author's operations over in chain order.
    ///
    /// `ownReplica` is for a device re-applying its **own** operations (its stored change sets
    /// and unsent operations after a restart) over a saved state that holds some of them
    /// already, grouped differently (typed characters saved one by one, then sealed as one
    /// coalesced insert): operations of that replica whose counters are partly applied have
    /// their remaining pieces applied instead of being refused as reused. Never pass another
    /// device's replica.
    public mutating func apply(
        _ ops: [CRDTOperation], physicalMillis: UInt64, ownReplica: ReplicaID? = nil
    ) -> ApplyReport {
        if ops.count >= 256 { reserveCapacity(for: ops) }
        return deliver(ops, physicalMillis: physicalMillis, ownReplica: ownReplica)
    }

    /// Grows the message and content storage once for a large batch (a device catching up),
    /// instead of through many doublings; growth stays geometric so repeated batches are
    /// still amortized O(1) per element.
    private mutating func reserveCapacity(for ops: [CRDTOperation]) {
        var messages = 0
        var bytes = 0
        for op in ops {
            switch op.payload {
            case .createMessage(_, _, let text):
                messages += 1
                bytes += text.utf8.count
            case .insertText(_, _, _, let text):
                bytes += text.utf8.count
            default:
                break
            }
        }
        func grow(_ count: Int, _ extra: Int, _ capacity: Int) -> Int? {
            count + extra > capacity ? max(count + extra, capacity * 2) : nil
        }
        if let capacity = grow(arena.count, bytes, arena.capacity) { arena.reserveCapacity(capacity) }
        if let capacity = grow(tree.nodes.count, messages, tree.nodes.capacity) {
            tree.nodes.reserveCapacity(capacity)
        }
    }

    func readiness(of op: CRDTOperation, physicalMillis: UInt64) -> Readiness {
        switch op.payload {
        case .createMessage(let parent, _, _):
            if isTooFarAhead(op, physicalMillis) { return .tooFarAhead }
            return parent.map { readiness(ofSpan: $0, count: 1) } ?? .ready
        case .insertText(let message, let after, let before, _):
            // Checked one by one: an array of the three would allocate for every insert.
            if !delivery.isApplied(message) { return .missing(message) }
            if let after, !delivery.isApplied(after) { return .missing(after) }
            if let before, !delivery.isApplied(before) { return .missing(before) }
            return .ready
        case .deleteText(let message, let spans):
            guard delivery.isApplied(message) else { return .missing(message) }
            for span in spans {
                if case .missing(let id) = readiness(ofSpan: span.start, count: span.count) { return .missing(id) }
            }
            return .ready
        case .deleteMessage(let message), .addReaction(let message, _):
            return delivery.isApplied(message) ? .ready : .missing(message)
        case .selectBranch(let parent, let child):
            if isTooFarAhead(op, physicalMillis) { return .tooFarAhead }
            if !delivery.isApplied(child) { return .missing(child) }
            if let parent, !delivery.isApplied(parent) { return .missing(parent) }
            return .ready
        case .removeReaction(let message, _, let observed):
            if !delivery.isApplied(message) { return .missing(message) }
            for id in observed where !delivery.isApplied(id) { return .missing(id) }
            return .ready
        case .setMetadata:
            return isTooFarAhead(op, physicalMillis) ? .tooFarAhead : .ready
        case .markRead:
            return .ready
        case .addConversation, .removeConversation, .setConversationState, .createFolder, .renameFolder,
            .removeFolder, .setSetting:
            return .invalid(.wrongDocumentKind)
        }
    }

    private func isTooFarAhead(_ op: CRDTOperation, _ physicalMillis: UInt64) -> Bool {
        HybridLogicalClock.isTooFarAhead(
            op.timestamp, physicalMillis: physicalMillis, maxSkewMillis: delivery.limits.maxSkewMillis)
    }

    mutating func execute(_ op: consuming CRDTOperation) -> RejectionReason? {
        // `op` is owned here (its last use), so its payload is taken apart without copying the
        // whole operation first; the helpers get the plain-data stamp and the parts.
        let stamp = OperationStamp(op)
        switch op.payload {
        case .createMessage(let parent, let role, let text):
            return executeCreate(stamp, parent: parent, role: role, text: text)
        case .insertText(let message, let after, let before, let text):
            return executeInsert(stamp, message: message, after: after, before: before, text: text)
        case .deleteText(let message, let spans):
            guard let slot = slot(of: message) else { return .invalidReference(message) }
            for span in spans {
                guard let start = replicas.pack(span.start) else { continue }
                let count = min(span.count, IdentifierLimits.counterMax - start.counterValue + 1)
                tree.deleteSpan(slot, start, count: count, arena: arena)
            }
            return nil
        case .deleteMessage(let message):
            guard let slot = slot(of: message) else { return .invalidReference(message) }
            tree.nodes[slot].isDeleted = true
            return nil
        case .selectBranch(let parent, let child):
            return executeSelect(stamp, parent: parent, child: child)
        case .setMetadata(let field, let value):
            metadataRegisters.writeRegister(field, value, timestamp: stamp.timestamp, writer: stamp.id)
            return nil
        case .addReaction(let message, let reaction):
            guard let slot = slot(of: message) else { return .invalidReference(message) }
            tree.addReaction(slot, reaction, tag: stamp.id)
            return nil
        case .removeReaction(let message, let reaction, let observed):
            guard let slot = slot(of: message) else { return .invalidReference(message) }
            tree.removeReaction(slot, reaction, observed: observed)
            return nil
        case .markRead(let upTo):
            markers.raise(stamp.id.replica, to: upTo)
            return nil
        case .addConversation, .removeConversation, .setConversationState, .createFolder, .renameFolder,
            .removeFolder, .setSetting:
            return .wrongDocumentKind
        }
    }

    private mutating func executeCreate(
        _ op: OperationStamp, parent: MessageID?, role: MessageRole, text: String
    )
        -> RejectionReason?
    {
        var parentID = PackedID.none
        var parentSlot: Int32?
        if let parent {
            guard let packed = replicas.pack(parent), let found = tree.slots[packed] else {
                return .invalidReference(parent)
            }
            parentID = packed
            parentSlot = found
        }
        guard text.utf8.count <= DecodingLimits.textBytesMax else { return .sizeLimitExceeded }
        guard let author = replicas.intern(op.id.replica) else { return .replicaLimitReached }
        let id = PackedID(replicaIndex: author, counter: op.id.counter)
        var node = MessageNode(id: id, parent: parentID, role: role, created: op.timestamp)
        if op.counterCount > 1 {
            let start = appendToArena(text)
            let new = NewRun(
                id: id &+ 1, length: Int32(op.counterCount - 1), contentStart: start,
                byteCount: Int32(arena.count - start))
            node.text = TextSequence(run: new.run(originLeft: .none, originRight: .none))
        }
        tree.add(node, parentSlot: parentSlot, replicas: replicas)
        return nil
    }

    private mutating func executeInsert(
        _ op: OperationStamp, message: MessageID, after: OperationID?, before: OperationID?, text: String
    ) -> RejectionReason? {
        guard let slot = slot(of: message) else { return .invalidReference(message) }
        guard text.utf8.count <= DecodingLimits.textBytesMax else { return .sizeLimitExceeded }
        var left = PackedID.none
        var right = PackedID.none
        if let after {
            guard let packed = replicas.pack(after), tree.textContains(slot, packed) else {
                return .invalidReference(after)
            }
            left = packed
        }
        if let before {
            guard let packed = replicas.pack(before), tree.textContains(slot, packed) else {
                return .invalidReference(before)
            }
            right = packed
        }
        guard let author = replicas.intern(op.id.replica) else { return .replicaLimitReached }
        let start = appendToArena(text)
        let new = NewRun(
            id: PackedID(replicaIndex: author, counter: op.id.counter), length: Int32(op.counterCount),
            contentStart: start, byteCount: Int32(arena.count - start))
        let table = replicas
        let placed = tree.integrate(slot, new, left: left, right: right, arena: arena) {
            table.precedes($0, $1)
        }
        return placed ? nil : .invalidReference(message)
    }

    private mutating func executeSelect(
        _ op: OperationStamp, parent: MessageID?, child: MessageID
    ) -> RejectionReason? {
        guard let childID = replicas.pack(child), let childSlot = tree.slot(of: childID) else {
            return .invalidReference(child)
        }
        let key = parent.flatMap { replicas.pack($0) } ?? .none
        guard tree.nodes[childSlot].parent == key, (parent == nil) == (key == .none) else { return .parentMismatch }
        branchChoices.writeRegister(key, childID, timestamp: op.timestamp, writer: op.id)
        return nil
    }

    func unappliedPieces(of op: CRDTOperation, gaps: [(start: UInt64, count: UInt64)]) -> [CRDTOperation]? {
        let message: MessageID
        let after: OperationID?
        let before: OperationID?
        let text: String
        let firstChar: UInt64
        switch op.payload {
        case .createMessage(_, _, let initial):
            guard gaps.allSatisfy({ $0.start > op.id.counter }) else { return nil }
            (message, after, before, text, firstChar) = (op.id, nil, nil, initial, op.id.counter + 1)
        case .insertText(let target, let left, let right, let inserted):
            (message, after, before, text, firstChar) = (target, left, right, inserted, op.id.counter)
        default:
            return nil
        }
        let scalars = Array(text.unicodeScalars)
        return gaps.compactMap { gap in
            let offset = Int(gap.start - firstChar)
            guard offset >= 0, offset + Int(gap.count) <= scalars.count else { return nil }
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: scalars[offset..<(offset + Int(gap.count))])
            let left = offset == 0 ? after : OperationID(replica: op.id.replica, counter: gap.start - 1)
            return CRDTOperation(
                id: OperationID(replica: op.id.replica, counter: gap.start), timestamp: op.timestamp,
                payload: .insertText(message: message, after: left, before: before, text: String(piece)),
                counterCount: gap.count)
        }
    }
}

/// What delivery needs of an operation besides its payload, as plain data.
struct OperationStamp {
    var id: OperationID
    var timestamp: HLCTimestamp
    var counterCount: UInt64

    init(id: OperationID, timestamp: HLCTimestamp, counterCount: UInt64) {
        self.id = id
        self.timestamp = timestamp
        self.counterCount = counterCount
    }

    init(_ op: borrowing CRDTOperation) {
        self.init(id: op.id, timestamp: op.timestamp, counterCount: op.counterCount)
    }
}
