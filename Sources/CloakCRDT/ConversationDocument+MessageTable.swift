/// The message records of the snapshot encoding (see `ConversationDocument.snapshot()`).
///
/// A record opens with one flags byte, so the common message, one never-edited run of text
/// and no reactions, costs no run list and no reaction count: bits 0–1 role, bit 2 deleted,
/// bit 3 reactions follow, bits 4–5 the text's shape, bits 6–7 zero.
enum MessageRecord {
    static let roleMask: UInt8 = 0x03
    static let deletedFlag: UInt8 = 0x04
    static let reactionsFlag: UInt8 = 0x08
    static let shapeShift: UInt8 = 4
    static let reservedMask: UInt8 = 0xC0

    /// The text shapes of bits 4–5 (3 is not a shape).
    enum Shape: UInt8 {
        /// No characters at all.
        case empty = 0
        /// One live run whose first id follows the message id and whose origins are both
        /// none: the text a message was created with, possibly streamed on by its author.
        case plain = 1
        /// Any other text: an explicit run list.
        case runs = 2
    }

    /// Flags, replica index, counter, parent distance, millis delta and logical: one byte
    /// each at least.
    static let bytesMin = 6

    /// Whether `run`, as the only run of message `id`, is written as `.plain`.
    static func isPlain(_ run: TextRun, of id: PackedID) -> Bool {
        !run.isDeleted && run.originLeft == .none && run.originRight == .none
            && run.id.replicaIndex == id.replicaIndex && run.id.counterValue == id.counterValue + 1
    }
}

extension ConversationDocument {
    /// One message record; appends its live text to `content`. `parentDistance` is how many
    /// records back the parent's is (0: a root message); `previousMillis` is the creation
    /// millis of the record before, so the delta is small.
    func writeMessage(
        _ slot: Int, parentDistance: Int, previousMillis: UInt64, to writer: inout ByteWriter,
        content: inout [UInt8], map: [Int], position: [ReplicaID: Int]
    ) {
        let node = tree.nodes[slot]
        var runs: [TextRun] = []
        var shape = MessageRecord.Shape.empty
        if let only = node.text.onlyRun, MessageRecord.isPlain(only, of: node.id) {
            shape = .plain
        } else if tree.runCount(slot) > 0 {
            runs = tree.canonicalRuns(slot)
            shape = runs.count == 1 && MessageRecord.isPlain(runs[0], of: node.id) ? .plain : .runs
        }
        var flags = node.role.rawValue | shape.rawValue << MessageRecord.shapeShift
        if node.isDeleted { flags |= MessageRecord.deletedFlag }
        if tree.hasReactions(slot) { flags |= MessageRecord.reactionsFlag }
        writer.byte(flags)
        writer.varint(map[node.id.replicaIndex])
        writer.varint(node.id.counterValue)
        writer.varint(parentDistance)
        writer.signedVarint(Int64(bitPattern: node.created.millis &- previousMillis))
        writer.varint(UInt64(node.created.logical))
        switch shape {
        case .empty:
            break
        case .plain:
            let run = node.text.onlyRun ?? runs[0]
            writer.varint(Int(run.length))
            writer.varint(Int(run.byteCount - run.length))
        case .runs:
            writer.varint(runs.count)
            for run in runs {
                writer.varint(map[run.id.replicaIndex])
                writer.varint(run.id.counterValue)
                writeRef(run.originLeft, map: map, to: &writer)
                writeRef(run.originRight, map: map, to: &writer)
                writer.varint(Int(run.length))
                writer.varint(run.isDeleted ? 0 : 1 + Int(run.byteCount - run.length))
            }
        }
        tree.visibleBytes(slot, arena: arena, into: &content)
        guard tree.hasReactions(slot) else { return }
        let reactions = tree.reactions(slot)
        writer.varint(reactions.entries.count)
        for entry in reactions.entries {
            writer.string(entry.reaction.emoji)
            writer.lengthPrefixed(entry.reaction.reactor)
            writer.varint(entry.tags.count)
            for tag in entry.tags {
                writer.varint(position[tag.replica] ?? 0)
                writer.varint(tag.counter)
            }
        }
    }
}

extension SnapshotLoader {
    /// Appends the next record's message to `tree` (holding the messages of the records
    /// before) and returns its id and its parent's record number (nil: a root message).
    mutating func readMessage(
        _ reader: inout ByteReader, into tree: inout MessageTree
    ) throws(CRDTDecodingError) -> (id: PackedID, parent: Int?) {
        let record = recordIDs.count
        let flags = try reader.byte()
        guard flags & MessageRecord.reservedMask == 0, let shape = MessageRecord.Shape(rawValue: flags >> 4 & 3) else {
            throw .unknownEnumerationValue(flags)
        }
        let role = try BatchDecoder.role(flags & MessageRecord.roleMask)
        let id = try readID(&reader)
        let distance = try reader.varint()
        guard distance <= UInt64(record) else { throw .inconsistentSnapshot }
        let parent = distance == 0 ? nil : record - Int(distance)
        previousMillis &+= UInt64(bitPattern: try reader.signedVarint())
        let logical = try reader.varint()
        guard logical <= UInt64(UInt32.max) else { throw .varintOverflow }
        let created = HLCTimestamp(millis: previousMillis, logical: UInt32(logical))
        let text: TextSequence
        switch shape {
        case .empty: text = TextSequence()
        case .plain: text = TextSequence(run: try readPlainRun(&reader, message: id))
        case .runs: text = try readRunList(&reader, texts: &tree.texts)
        }
        var reactions: Int32 = -1
        if flags & MessageRecord.reactionsFlag != 0 {
            reactions = Int32(tree.reactionSets.count)
            tree.reactionSets.append(try readReactions(&reader))
        }
        // Parent ids come from `recordIDs`: one small array instead of the nodes.
        tree.nodes.append(
            MessageNode(
                id: id, parent: parent.map { recordIDs[$0] } ?? .none, role: role, created: created,
                isDeleted: flags & MessageRecord.deletedFlag != 0, text: text, reactions: reactions))
        recordIDs.append(id)
        return (id, parent)
    }

    private mutating func readPlainRun(
        _ reader: inout ByteReader, message id: PackedID
    ) throws(CRDTDecodingError) -> TextRun {
        let length = try reader.varint()
        let extra = try reader.varint()
        guard length > 0, length <= UInt64(Int32.max), id.counterValue + length <= IdentifierLimits.counterMax,
            extra <= UInt64(Int32.max) - length
        else { throw .invalidSpan }
        let start = try takeContent(byteCount: Int(length + extra), scalars: Int(length))
        return TextRun(
            id: id &+ 1, originLeft: .none, originRight: .none, contentStart: start,
            byteCount: Int32(length + extra), length: Int32(length), isDeleted: false)
    }

    private mutating func readRunList(
        _ reader: inout ByteReader, texts: inout [TextTree]
    ) throws(CRDTDecodingError) -> TextSequence {
        let count = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 6)
        guard count > 0 else { throw .inconsistentSnapshot }
        if count == 1 { return TextSequence(run: try readRun(&reader)) }
        var runs: [TextRun] = []
        runs.reserveCapacity(count)
        for _ in 0..<count { runs.append(try readRun(&reader)) }
        return TextSequence(runs: runs, texts: &texts)
    }

    private mutating func readRun(_ reader: inout ByteReader) throws(CRDTDecodingError) -> TextRun {
        let id = try readID(&reader)
        let left = try readRef(&reader)
        let right = try readRef(&reader)
        let length = try reader.varint()
        let state = try reader.varint()
        guard length > 0, length <= UInt64(Int32.max), id.counterValue + length - 1 <= IdentifierLimits.counterMax,
            state <= UInt64(Int32.max) - length + 1
        else { throw .invalidSpan }
        var run = TextRun(
            id: id, originLeft: left, originRight: right, contentStart: 0, byteCount: 0, length: Int32(length),
            isDeleted: state == 0)
        if state > 0 {
            let byteCount = Int(length + state - 1)
            run.contentStart = try takeContent(byteCount: byteCount, scalars: Int(length))
            run.byteCount = Int32(byteCount)
        }
        return run
    }

    /// Claims the next `byteCount` bytes of the content section for a run of `scalars`
    /// scalars and returns where they start. The section is valid UTF-8 as a whole
    /// (`readContent`), so the run's bytes are valid on their own exactly when they start
    /// and end on scalar boundaries, and then they hold `byteCount` minus their continuation
    /// bytes scalars.
    private mutating func takeContent(byteCount: Int, scalars: Int) throws(CRDTDecodingError) -> Int {
        guard byteCount <= contentEnd - contentNext else { throw .inconsistentSnapshot }
        let start = contentNext
        let end = start + byteCount
        if contentIsASCII {
            guard byteCount == scalars else { throw .inconsistentSnapshot }
        } else {
            guard !UTF8Scalars.isContinuation(bytes[start]),
                end == contentEnd || !UTF8Scalars.isContinuation(bytes[end])
            else { throw .invalidUTF8 }
            guard UTF8Scalars.continuationCount(bytes, start..<end) == byteCount - scalars else {
                throw .inconsistentSnapshot
            }
        }
        contentNext = end
        return start
    }

    private static func equalBytes(_ bytes: [UInt8], _ lhs: Range<Int>, _ rhs: Range<Int>) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return bytes.withUnsafeBufferPointer { buffer in
            for offset in 0..<lhs.count where buffer[lhs.lowerBound + offset] != buffer[rhs.lowerBound + offset] {
                return false
            }
            return true
        }
    }

    /// A message's reactions: at least one, strictly ascending, each with at least one tag,
    /// tags strictly ascending (the canonical form `ReactionSet` keeps).
    private mutating func readReactions(_ reader: inout ByteReader) throws(CRDTDecodingError) -> ReactionSet {
        let count = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 4)
        guard count > 0 else { throw .inconsistentSnapshot }
        var set = ReactionSet()
        var previous: Reaction?
        for _ in 0..<count {
            let reaction = try readReaction(&reader)
            if let previous { guard previous < reaction else { throw .inconsistentSnapshot } }
            previous = reaction
            let tagCount = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 2)
            guard tagCount > 0 else { throw .inconsistentSnapshot }
            var tags: [OperationID] = []
            tags.reserveCapacity(tagCount)
            var previousTag: (replica: Int, counter: UInt64)?
            for _ in 0..<tagCount {
                let tag = (replica: try replicaIndex(&reader), counter: try reader.varint())
                if let previousTag { guard previousTag < tag else { throw .inconsistentSnapshot } }
                previousTag = tag
                tags.append(OperationID(replica: table[tag.replica], counter: tag.counter))
            }
            set.append(ReactionSet.Entry(reaction: reaction, tags: tags))
        }
        return set
    }

    /// A reaction; one whose encoding repeats a recent one (the same few accounts react with
    /// the same few emoji all through a conversation) reuses the decoded value, which was
    /// validated when first read, instead of allocating its strings again.
    private mutating func readReaction(_ reader: inout ByteReader) throws(CRDTDecodingError) -> Reaction {
        let start = reader.offset
        _ = try reader.take(try reader.bounded(limit: DecodingLimits.textBytesMax, field: .textBytes))
        _ = try reader.take(try reader.bounded(limit: DecodingLimits.bytesFieldMax, field: .bytesField))
        let range = start..<reader.offset
        for (index, cached) in recentEncodings.enumerated() where Self.equalBytes(bytes, cached, range) {
            return recentReactions[index]
        }
        var encoded = ByteReader(bytes, range: range)
        let reaction = try BatchDecoder.reaction(&encoded)
        if recentEncodings.count == Self.recentReactionsMax {
            recentEncodings.removeFirst()
            recentReactions.removeFirst()
        }
        recentEncodings.append(range)
        recentReactions.append(reaction)
        return reaction
    }
}
