extension ConversationDocument {
    /// Restores a document from `snapshot()`. Total and bounded (ADV-17: local persisted
    /// state is untrusted input too): every count is checked before allocating, structure
    /// is validated (canonical replica table, unique messages, parents before children and
    /// siblings in order, content that is valid UTF-8 and matches the run lengths), and any failure
    /// throws. The snapshot buffer becomes the text arena without a copy (the first local edit
    /// copies it). Held operations come back held; timestamped ones re-check the skew rule at
    /// the next `apply`.
    public init(snapshot bytes: [UInt8], limits: DeliveryLimits = DeliveryLimits()) throws(CRDTDecodingError) {
        self.init(limits: limits)
        var reader = ByteReader(bytes)
        for expected in Self.snapshotMagic where try reader.byte() != expected {
            throw .badMagic
        }
        let version = try reader.byte()
        guard version == Self.snapshotVersion else { throw .unsupportedVersion(version) }
        var loader = SnapshotLoader(bytes: bytes)
        replicas = ReplicaTable(ids: try loader.readReplicaTable(&reader))
        delivery.applied = try loader.readApplied(&reader)
        try loader.readContent(&reader)
        // Zero-copy: the snapshot buffer itself becomes the content arena and runs point into
        // its content section. The first local append copies it (copy-on-write), so loading
        // does not pay for copying text that may never be edited.
        arena = bytes
        // Slots are Int32, so that is the most messages a document holds.
        let messageCount = try reader.count(
            limit: Int(Int32.max), field: .operationsPerBatch, minimumElementBytes: MessageRecord.bytesMin)
        try readMessages(&reader, count: messageCount, loader: &loader)
        guard loader.contentNext == loader.contentEnd else { throw .inconsistentSnapshot }
        try readRegisters(&reader, loader: loader)
        let pendingLength = try reader.bounded(limit: Int.max, field: .textBytes)
        var pendingReader = ByteReader(bytes, range: try reader.take(pendingLength))
        let held = try OperationBatch.decode(from: &pendingReader)
        try pendingReader.expectEnd()
        try reader.expectEnd()
        // Held operations go back through delivery: they are held again (their
        // dependencies are still missing) without being reported anywhere.
        if !held.isEmpty { _ = deliver(held, physicalMillis: 0) }
    }

    /// The message records, in preorder: a parent's record comes before its children's, and
    /// each message must follow its previous sibling in sibling order, so linking appends
    /// and the tree is acyclic by construction.
    private mutating func readMessages(
        _ reader: inout ByteReader, count: Int, loader: inout SnapshotLoader
    ) throws(CRDTDecodingError) {
        tree.nodes.reserveCapacity(count)
        loader.recordIDs.reserveCapacity(count)
        var counters = [[(UInt64, Int32)]](repeating: [], count: replicas.count)
        for record in 0..<count {
            let (id, parent) = try loader.readMessage(&reader, into: &tree)
            let slot = Int32(record)
            counters[id.replicaIndex].append((id.counterValue, slot))
            guard tree.appendChild(slot, parentSlot: parent.map(Int32.init), replicas: replicas) else {
                throw .inconsistentSnapshot
            }
        }
        guard let index = MessageIndex(counters: counters) else { throw .inconsistentSnapshot }
        tree.slots = index
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
    /// The whole snapshot: the content section is read in place.
    let bytes: [UInt8]
    var table: [ReplicaID] = []
    /// `table.count`, kept apart so the per-field checks do not touch the array.
    var replicaCount = 0
    /// Where the content section lies in `bytes`, and where the next live run's bytes start.
    var contentEnd = 0
    var contentNext = 0
    /// Whether the content section is ASCII: then a run's scalar count is its byte count.
    var contentIsASCII = true
    /// The creation millis of the previous message record (records carry deltas).
    var previousMillis: UInt64 = 0
    /// The id of each message record read so far.
    var recordIDs: [PackedID] = []
    /// Recently decoded reactions, and where their encodings lie in `bytes`.
    var recentReactions: [Reaction] = []
    var recentEncodings: [Range<Int>] = []
    static let recentReactionsMax = 8

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func readReplicaTable(_ reader: inout ByteReader) throws(CRDTDecodingError) -> [ReplicaID] {
        let count = try reader.count(
            limit: DecodingLimits.replicasPerEncodingMax, field: .replicasPerEncoding, minimumElementBytes: 16)
        table.reserveCapacity(count)
        for _ in 0..<count {
            let id = try reader.replicaID()
            if let last = table.last, !(last < id) { throw .replicaTableNotCanonical }
            table.append(id)
        }
        replicaCount = table.count
        return table
    }

    func replicaIndex(_ reader: inout ByteReader) throws(CRDTDecodingError) -> Int {
        let index = try reader.varint()
        guard index < UInt64(replicaCount) else { throw .replicaIndexOutOfRange }
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
        guard tag <= UInt64(replicaCount) else { throw .replicaIndexOutOfRange }
        let counter = try reader.varint()
        guard counter <= IdentifierLimits.counterMax else { throw .invalidSpan }
        return PackedID(replicaIndex: Int(tag - 1), counter: counter)
    }

    func readStamp(_ reader: inout ByteReader) throws(CRDTDecodingError) -> (HLCTimestamp, OperationID) {
        let timestamp = try reader.timestamp()
        let replica = table[try replicaIndex(&reader)]
        return (timestamp, OperationID(replica: replica, counter: try reader.varint()))
    }

    /// The content section: validated as UTF-8 once, as a whole; each run then checks that
    /// its bytes start and end on scalar boundaries and hold exactly its scalar count
    /// (`takeContent`), which together equal validating every run on its own.
    mutating func readContent(_ reader: inout ByteReader) throws(CRDTDecodingError) {
        let length = try reader.bounded(limit: Int.max, field: .textBytes)
        let range = try reader.take(length)
        guard let scalars = UTF8Scalars.validatedCount(bytes, range) else { throw .invalidUTF8 }
        contentIsASCII = scalars == length
        contentNext = range.lowerBound
        contentEnd = range.upperBound
    }
}
