/// Why a local edit was refused (nothing was changed and no counter was used).
///
/// ```swift
/// do {
///     let op = try doc.insertText("!", into: id, at: 99, replica: &me, physicalMillis: now)
/// } catch .positionOutOfRange {
///     // the app's cursor is stale
/// } catch {}
/// ```
public enum ConversationEditError: Error, Hashable, Sendable {
    /// The message (or parent, or branch child) is not in this document.
    case unknownMessage(MessageID)
    /// A text position is past the end of the message's text.
    case positionOutOfRange
    /// A text insert with no text.
    case emptyText
    /// A text longer than `DecodingLimits.textBytesMax` bytes.
    case textTooLong
    /// The replica's 48-bit counter space is exhausted.
    case counterExhausted
    /// The document already names the maximum number of distinct replicas.
    case replicaLimitReached
    /// The reaction is not present, so there is nothing to remove.
    case reactionNotPresent
}

extension ConversationDocument {
    /// Creates a message under `parent` (nil: a root message) with initial text.
    /// The returned operation's id is the new message's id.
    public mutating func createMessage(
        parent: MessageID?, role: MessageRole, text: String, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        if let parent, slot(of: parent) == nil { throw .unknownMessage(parent) }
        guard text.utf8.count <= DecodingLimits.textBytesMax else { throw .textTooLong }
        let payload = OperationPayload.createMessage(parent: parent, role: role, text: text)
        return try commit(payload, count: 1 + UInt64(UTF8Scalars.count(of: text)), replica: &replica, physicalMillis)
    }

    /// Creates a sibling of `message` (same parent: an edited prompt or a regenerated reply)
    /// and makes it the active branch. Returns both operations.
    public mutating func branch(
        from message: MessageID, role: MessageRole, text: String, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> [CRDTOperation] {
        guard let slot = slot(of: message) else { throw .unknownMessage(message) }
        let parent = replicas.unpack(tree.nodes[slot].parent)
        let create = try createMessage(
            parent: parent, role: role, text: text, replica: &replica, physicalMillis: physicalMillis)
        let select = try selectBranch(create.id, replica: &replica, physicalMillis: physicalMillis)
        return [create, select]
    }

    /// Makes `child` the active branch at its parent's fork point.
    public mutating func selectBranch(
        _ child: MessageID, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        guard let slot = slot(of: child) else { throw .unknownMessage(child) }
        let parent = replicas.unpack(tree.nodes[slot].parent)
        return try commit(.selectBranch(parent: parent, child: child), count: 1, replica: &replica, physicalMillis)
    }

    /// Appends text at the end of a message: the streaming path (consecutive appends by one
    /// device extend one run, O(1) memory per run).
    public mutating func appendText(
        _ text: String, to message: MessageID, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        let end = tree.visibleCount(try editedSlot(message))
        return try insertText(text, into: message, at: end, replica: &replica, physicalMillis: physicalMillis)
    }

    /// Inserts text at a visible position (Unicode scalars, 0...textLength) of a message.
    public mutating func insertText(
        _ text: String, into message: MessageID, at position: Int, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        let slot = try editedSlot(message)
        guard !text.isEmpty else { throw .emptyText }
        guard text.utf8.count <= DecodingLimits.textBytesMax else { throw .textTooLong }
        guard position >= 0, position <= tree.visibleCount(slot) else { throw .positionOutOfRange }
        guard let author = replicas.intern(replica.id) else { throw .replicaLimitReached }
        let scalars = UInt64(UTF8Scalars.count(of: text))
        let applied = delivery.applied.position(of: replica.id)
        guard let counter = replica.reserve(scalars, floor: delivery.counterFloor(at: applied)) else {
            throw .counterExhausted
        }
        let timestamp = replica.clock.tick(physicalMillis: physicalMillis)
        let start = appendToArena(text)
        let new = NewRun(
            id: PackedID(replicaIndex: author, counter: counter), length: Int32(scalars), contentStart: start,
            byteCount: Int32(arena.count - start))
        let origins = tree.insertLocal(slot, new, at: position, arena: arena)
        let op = CRDTOperation(
            id: OperationID(replica: replica.id, counter: counter), timestamp: timestamp,
            payload: .insertText(
                message: message, after: replicas.unpack(origins.left), before: replicas.unpack(origins.right),
                text: text),
            counterCount: scalars)
        recordLocal(op, appliedPosition: applied)
        return op
    }

    /// Deletes the visible characters `range` (Unicode scalar positions) of a message.
    public mutating func deleteText(
        in message: MessageID, range: Range<Int>, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        let slot = try editedSlot(message)
        guard range.lowerBound >= 0, range.upperBound <= tree.visibleCount(slot) else {
            throw .positionOutOfRange
        }
        let applied = delivery.applied.position(of: replica.id)
        guard let counter = replica.reserve(1, floor: delivery.counterFloor(at: applied)) else {
            throw .counterExhausted
        }
        let timestamp = replica.clock.tick(physicalMillis: physicalMillis)
        let spans = tree.deleteLocal(
            slot, at: range.lowerBound, count: range.count, arena: arena, replicas: replicas)
        let op = CRDTOperation(
            id: OperationID(replica: replica.id, counter: counter), timestamp: timestamp,
            payload: .deleteText(message: message, spans: spans))
        recordLocal(op, appliedPosition: applied)
        return op
    }

    /// Deletes a message (tombstone).
    public mutating func deleteMessage(
        _ message: MessageID, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        guard slot(of: message) != nil else { throw .unknownMessage(message) }
        return try commit(.deleteMessage(message), count: 1, replica: &replica, physicalMillis)
    }

    /// Adds a reaction (emoji, reactor account id bytes) to a message.
    public mutating func addReaction(
        _ reaction: Reaction, to message: MessageID, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        guard slot(of: message) != nil else { throw .unknownMessage(message) }
        return try commit(
            .addReaction(message: message, reaction: reaction), count: 1, replica: &replica, physicalMillis)
    }

    /// Removes a reaction: the adds this device has seen (a concurrent add elsewhere wins).
    public mutating func removeReaction(
        _ reaction: Reaction, from message: MessageID, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        guard let slot = slot(of: message) else { throw .unknownMessage(message) }
        let observed = tree.reactions(slot).liveTags(of: reaction)
        guard !observed.isEmpty else { throw .reactionNotPresent }
        let payload = OperationPayload.removeReaction(message: message, reaction: reaction, observed: observed)
        return try commit(payload, count: 1, replica: &replica, physicalMillis)
    }

    /// Writes one metadata register (`.unset` clears it).
    public mutating func setMetadata(
        _ field: MetadataField, to value: MetadataValue, replica: inout Replica, physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        try commit(.setMetadata(field, value), count: 1, replica: &replica, physicalMillis)
    }

    /// Sets the title (nil clears it).
    public mutating func setTitle(
        _ title: String?, replica: inout Replica, physicalMillis: UInt64
    )
        throws(ConversationEditError) -> CRDTOperation
    {
        try setMetadata(
            .title, to: title.map(MetadataValue.text) ?? .unset, replica: &replica, physicalMillis: physicalMillis)
    }

    /// Moves the conversation to a library folder (nil: no folder).
    public mutating func setFolder(
        _ folder: FolderID?, replica: inout Replica, physicalMillis: UInt64
    )
        throws(ConversationEditError) -> CRDTOperation
    {
        let value = folder.map { MetadataValue.bytes(FolderReference.encode($0)) } ?? .unset
        return try setMetadata(.folder, to: value, replica: &replica, physicalMillis: physicalMillis)
    }

    /// Raises this device's read marker to `upTo` (e.g. the newest read message's `created`).
    public mutating func markRead(
        upTo: HLCTimestamp, replica: inout Replica, physicalMillis: UInt64
    )
        throws(ConversationEditError) -> CRDTOperation
    {
        try commit(.markRead(upTo: upTo), count: 1, replica: &replica, physicalMillis)
    }

    /// The slot of a message being edited, remembering it for the next keystroke.
    private mutating func editedSlot(_ message: MessageID) throws(ConversationEditError) -> Int {
        if let last = lastEdited, last.id == message { return last.slot }
        guard let slot = slot(of: message) else { throw .unknownMessage(message) }
        lastEdited = (message, slot)
        return slot
    }

    /// Stamps, applies and records a payload whose effect does not depend on positions.
    private mutating func commit(
        _ payload: OperationPayload, count: UInt64, replica: inout Replica, _ physicalMillis: UInt64
    ) throws(ConversationEditError) -> CRDTOperation {
        guard replicas.index(of: replica.id) != nil || replicas.count < IdentifierLimits.replicasPerDocumentMax
        else { throw .replicaLimitReached }
        guard let counter = replica.reserve(count, floor: delivery.counterFloor(for: replica.id)) else {
            throw .counterExhausted
        }
        let timestamp = replica.clock.tick(physicalMillis: physicalMillis)
        let op = CRDTOperation(
            id: OperationID(replica: replica.id, counter: counter), timestamp: timestamp, payload: payload,
            counterCount: count)
        _ = execute(op)
        recordLocal(op)
        return op
    }

    private mutating func recordLocal(_ op: CRDTOperation) {
        recordLocal(op, appliedPosition: delivery.applied.position(of: op.id.replica))
    }

    /// `recordLocal` with the writer's position in `delivery.applied` already looked up.
    private mutating func recordLocal(_ op: CRDTOperation, appliedPosition: Int?) {
        delivery.markApplied(OperationStamp(op), at: appliedPosition)
        if !delivery.pending.isEmpty {
            var released: [CRDTOperation] = []
            delivery.pending.releaseWaiters(
                replica: op.id.replica, start: op.id.counter, length: op.counterCount, into: &released)
            if !released.isEmpty { _ = deliver(released, physicalMillis: op.timestamp.millis) }
        }
    }
}
