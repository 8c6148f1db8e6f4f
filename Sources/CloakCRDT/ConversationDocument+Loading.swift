extension ConversationDocument {
    /// Restores a document from `snapshot()`. Total and bounded (ADV-17: local persisted
    /// state is untrusted input too): every count is checked before allocating, structure
    /// is validated (canonical replica table, unique messages, existing parents, content
    /// that is valid UTF-8 and matches the run lengths), and any failure throws. The snapshot
    /// buffer becomes the text arena without a copy (the first local edit copies it). Held
    /// operations come back held; timestamped ones re-check the skew rule at the next `apply`.
    public init(snapshot bytes: [UInt8], limits: DeliveryLimits = DeliveryLimits()) throws(CRDTDecodingError) {
        self.init(limits: limits)
        var reader = ByteReader(bytes)
        for expected in Self.snapshotMagic where try reader.byte() != expected {
            throw .badMagic
        }
        let version = try reader.byte()
        guard version == Self.snapshotVersion else { throw .unsupportedVersion(version) }
        var loader = SnapshotLoader()
        replicas = ReplicaTable(ids: try loader.readReplicaTable(&reader))
        delivery.applied = try loader.readApplied(&reader)
        let contentLength = try reader.bounded(limit: Int.max, field: .textBytes)
        let content = try reader.take(contentLength)
        // Zero-copy: the snapshot buffer itself becomes the content arena and runs point into
        // its content section. The first local append copies it (copy-on-write), so loading
        // does not pay for copying text that may never be edited.
        arena = reader.bytes
        loader.contentStart = content.lowerBound
        loader.contentEnd = content.upperBound
        let messageCount = try reader.count(
            limit: Int(IdentifierLimits.counterMax), field: .operationsPerBatch, minimumElementBytes: 8)
        tree.nodes.reserveCapacity(messageCount)
        for _ in 0..<messageCount {
            let node = try loader.readMessage(&reader, arena: arena)
            guard tree.slots.insert(node.id, slot: Int32(tree.nodes.count)) else { throw .inconsistentSnapshot }
            tree.nodes.append(node)
        }
        guard loader.contentLength == contentLength else { throw .inconsistentSnapshot }
        try readRegisters(&reader, loader: loader)
        try linkMessages()
        let pendingLength = try reader.bounded(limit: Int.max, field: .textBytes)
        var pendingReader = ByteReader(Array(reader.bytes[try reader.take(pendingLength)]))
        let held = try OperationBatch.decode(from: &pendingReader)
        try pendingReader.expectEnd()
        try reader.expectEnd()
        // Held operations go back through delivery: they are held again (their
        // dependencies are still missing) without being reported anywhere.
        _ = deliver(held, physicalMillis: 0)
    }

    /// Links children in snapshot order, which is sibling order, so each link appends.
    private mutating func linkMessages() throws(CRDTDecodingError) {
        for slot in tree.nodes.indices {
            let parent = tree.nodes[slot].parent
            var parentSlot: Int32?
            if parent != .none {
                guard parent != tree.nodes[slot].id, let found = tree.slots[parent] else { throw .inconsistentSnapshot }
                parentSlot = found
            }
            tree.link(Int32(slot), parentSlot: parentSlot, replicas: replicas)
        }
    }

    private mutating func readRegisters(_ reader: inout ByteReader, loader: SnapshotLoader) throws(CRDTDecodingError) {
        let branchCount = try reader.count(limit: Int.max, field: .operationsPerBatch, minimumElementBytes: 5)
        for _ in 0..<branchCount {
            let parent = try loader.readRef(&reader)
            let child = try loader.readRef(&reader)
            let (timestamp, writer) = try loader.readStamp(&reader)
            guard child != .none else { throw .inconsistentSnapshot }
            branchChoices[parent] = LWWRegister(value: child, timestamp: timestamp, writer: writer)
        }
        let fieldCount = try reader.count(limit: Int.max, field: .operationsPerBatch, minimumElementBytes: 5)
        for _ in 0..<fieldCount {
            let field = try BatchDecoder.field(&reader)
            let value = try BatchDecoder.value(&reader)
            let (timestamp, writer) = try loader.readStamp(&reader)
            metadataRegisters[field] = LWWRegister(value: value, timestamp: timestamp, writer: writer)
        }
        let markerCount = try reader.count(limit: Int.max, field: .operationsPerBatch, minimumElementBytes: 18)
        var marks: [ReplicaID: HLCTimestamp] = [:]
        for _ in 0..<markerCount {
            let device = try reader.replicaID()
            marks[device] = try reader.timestamp()
        }
        markers = ReadMarkers(markers: marks)
    }
}

/// Reads the snapshot sections that do not depend on the document being built.
struct SnapshotLoader {
    var table: [ReplicaID] = []
    /// Sum of live runs' byte counts so far: the next run's offset in the content section.
    var contentLength = 0
    /// Where the content section lies in the buffer that serves as the arena.
    var contentStart = 0
    var contentEnd = 0

    mutating func readReplicaTable(_ reader: inout ByteReader) throws(CRDTDecodingError) -> [ReplicaID] {
        let count = try reader.count(
            limit: DecodingLimits.replicasPerEncodingMax, field: .replicasPerEncoding, minimumElementBytes: 16)
        table.reserveCapacity(count)
        for _ in 0..<count {
            let id = try reader.replicaID()
            if let last = table.last, !(last < id) { throw .replicaTableNotCanonical }
            table.append(id)
        }
        return table
    }

    func replicaIndex(_ reader: inout ByteReader) throws(CRDTDecodingError) -> Int {
        let index = try reader.varint()
        guard index < UInt64(table.count) else { throw .replicaIndexOutOfRange }
        return Int(index)
    }

    func readApplied(_ reader: inout ByteReader) throws(CRDTDecodingError) -> ReplicaMap<CounterSet> {
        let count = try reader.count(limit: table.count, field: .replicasPerEncoding, minimumElementBytes: 2)
        var result = ReplicaMap<CounterSet>()
        for _ in 0..<count {
            let replica = table[try replicaIndex(&reader)]
            let intervals = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 2)
            var starts: [UInt64] = []
            var ends: [UInt64] = []
            starts.reserveCapacity(intervals)
            ends.reserveCapacity(intervals)
            var previous: UInt64 = 0
            for index in 0..<intervals {
                let gap = try reader.varint()
                let length = try reader.varint()
                let (start, overflowStart) = previous.addingReportingOverflow(gap)
                let (end, overflowEnd) = start.addingReportingOverflow(length)
                guard !overflowStart, !overflowEnd, length > 0, index == 0 || gap > 0 else { throw .invalidSpan }
                starts.append(start)
                ends.append(end)
                previous = end
            }
            guard result.position(of: replica) == nil else { throw .inconsistentSnapshot }
            result.append(replica, CounterSet(starts: starts, ends: ends))
        }
        return result
    }

    func readID(_ reader: inout ByteReader) throws(CRDTDecodingError) -> PackedID {
        let index = try replicaIndex(&reader)
        let counter = try reader.varint()
        guard counter <= IdentifierLimits.counterMax else { throw .invalidSpan }
        return PackedID(replicaIndex: index, counter: counter)
    }

    func readRef(_ reader: inout ByteReader) throws(CRDTDecodingError) -> PackedID {
        let tag = try reader.varint()
        guard tag > 0 else { return .none }
        guard tag <= UInt64(table.count) else { throw .replicaIndexOutOfRange }
        let counter = try reader.varint()
        guard counter <= IdentifierLimits.counterMax else { throw .invalidSpan }
        return PackedID(replicaIndex: Int(tag - 1), counter: counter)
    }

    func readStamp(_ reader: inout ByteReader) throws(CRDTDecodingError) -> (HLCTimestamp, OperationID) {
        let timestamp = try reader.timestamp()
        let replica = table[try replicaIndex(&reader)]
        return (timestamp, OperationID(replica: replica, counter: try reader.varint()))
    }

    mutating func readMessage(_ reader: inout ByteReader, arena: [UInt8]) throws(CRDTDecodingError) -> MessageNode {
        let id = try readID(&reader)
        let parent = try readRef(&reader)
        let role = try BatchDecoder.role(try reader.byte())
        let created = try reader.timestamp()
        let deleted = try reader.byte()
        guard deleted <= 1 else { throw .unknownEnumerationValue(deleted) }
        let runCount = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 6)
        var runs: [TextRun] = []
        runs.reserveCapacity(runCount)
        for _ in 0..<runCount { runs.append(try readRun(&reader, arena: arena)) }
        var node = MessageNode(
            id: id, parent: parent, role: role, created: created,
            text: runs.isEmpty ? TextSequence() : TextSequence(runs: runs))
        node.isDeleted = deleted == 1
        let reactionCount = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 3)
        if reactionCount > 0 {
            var tags: [Reaction: [OperationID]] = [:]
            for _ in 0..<reactionCount {
                let reaction = try BatchDecoder.reaction(&reader)
                let tagCount = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 2)
                var list: [OperationID] = []
                for _ in 0..<tagCount {
                    let replica = table[try replicaIndex(&reader)]
                    list.append(OperationID(replica: replica, counter: try reader.varint()))
                }
                guard !list.isEmpty else { throw .inconsistentSnapshot }
                tags[reaction] = list
            }
            node.reactions = AddWinsSet(tags: tags)
        }
        return node
    }

    /// A run, with its content checked against the arena: in range, valid UTF-8 on its own,
    /// and exactly `length` scalars.
    private mutating func readRun(_ reader: inout ByteReader, arena: [UInt8]) throws(CRDTDecodingError) -> TextRun {
        let id = try readID(&reader)
        let left = try readRef(&reader)
        let right = try readRef(&reader)
        let length = try reader.varint()
        guard length > 0, length <= UInt64(Int32.max), id.counterValue + length - 1 <= IdentifierLimits.counterMax
        else { throw .invalidSpan }
        let deleted = try reader.byte()
        guard deleted <= 1 else { throw .unknownEnumerationValue(deleted) }
        var byteCount = 0
        if deleted == 0 {
            byteCount = try reader.bounded(limit: Int(Int32.max), field: .textBytes)
            guard byteCount <= contentEnd - contentStart - contentLength else { throw .inconsistentSnapshot }
            let range = (contentStart + contentLength)..<(contentStart + contentLength + byteCount)
            guard UTF8Scalars.validatedCount(arena, range) == Int(length) else { throw .invalidUTF8 }
        }
        defer { contentLength += byteCount }
        return TextRun(
            id: id, originLeft: left, originRight: right, contentStart: contentStart + contentLength,
            byteCount: Int32(byteCount),
            length: Int32(length), isDeleted: deleted == 1)
    }
}
