extension AccountLibraryDocument {
    static let snapshotMagic: [UInt8] = Array("CKAL".utf8)
    static let snapshotVersion: UInt8 = 1

    /// The whole library as bytes; `AccountLibraryDocument(snapshot:)` restores it.
    ///
    /// Format (version 1; `id` = 16-byte replica · counter; `stamp` = timestamp · id):
    /// ```
    /// "CKAL" 0x01
    /// applied:       count · (16-byte replica · intervalCount · (start gap · length)*)
    /// conversations: count · (16-byte key · tagCount · id*)            ascending keys
    /// states:        count · (16-byte key · state u8 · stamp)
    /// folders:       count · (id · tagCount · id*)                     ascending ids
    /// folder names:  count · (id · string · stamp)
    /// settings:      count · (string key · value · stamp)              keys by UTF-8 bytes
    /// pending:       byte length · an `OperationBatch` of held operations
    /// ```
    public func snapshot() -> [UInt8] {
        var writer = canonicalState()
        writer.lengthPrefixed(OperationBatch.encode(delivery.pending.operations, coalescing: false))
        return writer.bytes
    }

    /// The convergence digest of the library (held operations excluded); see `StateHash`.
    public var stateHash: StateHash { StateHash(of: canonicalState().bytes) }

    private func canonicalState() -> ByteWriter {
        var writer = ByteWriter(capacity: 1024)
        writer.bytes.append(contentsOf: Self.snapshotMagic)
        writer.byte(Self.snapshotVersion)
        let applied = delivery.applied.entries.sorted { $0.key < $1.key }
        writer.varint(applied.count)
        for (replica, set) in applied {
            writer.replicaID(replica)
            writer.varint(set.intervalCount)
            var previous: UInt64 = 0
            for (start, end) in zip(set.starts, set.ends) {
                writer.varint(start - previous)
                writer.varint(end - start)
                previous = end
            }
        }
        let conversations = conversationTags.tags.sorted { $0.key < $1.key }
        writer.varint(conversations.count)
        for (key, tags) in conversations {
            writer.replicaID(key.raw)
            Self.writeIDs(tags, to: &writer)
        }
        let states = conversationStates.sorted { $0.key < $1.key }
        writer.varint(states.count)
        for (key, register) in states {
            writer.replicaID(key.raw)
            writer.byte(register.value.rawValue)
            Self.writeStamp(register.timestamp, register.writer, to: &writer)
        }
        let folders = folderTags.tags.sorted { $0.key < $1.key }
        writer.varint(folders.count)
        for (folder, tags) in folders {
            Self.writeID(folder, to: &writer)
            Self.writeIDs(tags, to: &writer)
        }
        let names = folderNames.sorted { $0.key < $1.key }
        writer.varint(names.count)
        for (folder, register) in names {
            Self.writeID(folder, to: &writer)
            writer.string(register.value)
            Self.writeStamp(register.timestamp, register.writer, to: &writer)
        }
        let settings = settingRegisters.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        writer.varint(settings.count)
        for (key, register) in settings {
            writer.string(key)
            BatchEncoder.writeValue(register.value, to: &writer)
            Self.writeStamp(register.timestamp, register.writer, to: &writer)
        }
        return writer
    }

    private static func writeID(_ id: OperationID, to writer: inout ByteWriter) {
        writer.replicaID(id.replica)
        writer.varint(id.counter)
    }

    private static func writeIDs(_ ids: [OperationID], to writer: inout ByteWriter) {
        writer.varint(ids.count)
        for id in ids { writeID(id, to: &writer) }
    }

    private static func writeStamp(_ timestamp: HLCTimestamp, _ id: OperationID, to writer: inout ByteWriter) {
        writer.timestamp(timestamp)
        writeID(id, to: &writer)
    }

    /// Restores a library from `snapshot()`; total and bounded like every decoder here.
    public init(snapshot bytes: [UInt8], limits: DeliveryLimits = DeliveryLimits()) throws(CRDTDecodingError) {
        self.init(limits: limits)
        var reader = ByteReader(bytes)
        for expected in Self.snapshotMagic where try reader.byte() != expected {
            throw .badMagic
        }
        let version = try reader.byte()
        guard version == Self.snapshotVersion else { throw .unsupportedVersion(version) }
        let appliedCount = try reader.count(limit: Int.max, field: .replicasPerEncoding, minimumElementBytes: 17)
        for _ in 0..<appliedCount {
            let replica = try reader.replicaID()
            let intervals = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 2)
            var set = CounterSet()
            var previous: UInt64 = 0
            for _ in 0..<intervals {
                let (start, overflowStart) = previous.addingReportingOverflow(try reader.varint())
                let length = try reader.varint()
                let (end, overflowEnd) = start.addingReportingOverflow(length)
                guard !overflowStart, !overflowEnd, length > 0 else { throw .invalidSpan }
                set.insert(start: start, count: length)
                previous = end
            }
            delivery.applied.set(replica, set)
        }
        let conversationCount = try reader.count(limit: Int.max, field: .operationsPerBatch, minimumElementBytes: 17)
        var conversations: [ConversationKey: [OperationID]] = [:]
        for _ in 0..<conversationCount {
            conversations[ConversationKey(raw: try reader.replicaID())] = try Self.readIDs(&reader)
        }
        conversationTags = AddWinsSet(tags: conversations)
        let stateCount = try reader.count(limit: Int.max, field: .operationsPerBatch, minimumElementBytes: 36)
        for _ in 0..<stateCount {
            let key = ConversationKey(raw: try reader.replicaID())
            let raw = try reader.byte()
            guard let state = ConversationState(rawValue: raw) else { throw .unknownEnumerationValue(raw) }
            let (timestamp, writer) = try Self.readStamp(&reader)
            conversationStates[key] = LWWRegister(value: state, timestamp: timestamp, writer: writer)
        }
        try readFolders(&reader)
        let settingCount = try reader.count(limit: Int.max, field: .operationsPerBatch, minimumElementBytes: 21)
        for _ in 0..<settingCount {
            let key = try reader.string().text
            let value = try BatchDecoder.value(&reader)
            let (timestamp, writer) = try Self.readStamp(&reader)
            settingRegisters[key] = LWWRegister(value: value, timestamp: timestamp, writer: writer)
        }
        let pendingLength = try reader.bounded(limit: Int.max, field: .textBytes)
        var pendingReader = ByteReader(Array(reader.bytes[try reader.take(pendingLength)]))
        let held = try OperationBatch.decode(from: &pendingReader)
        try pendingReader.expectEnd()
        try reader.expectEnd()
        _ = deliver(held, physicalMillis: 0)
    }

    private mutating func readFolders(_ reader: inout ByteReader) throws(CRDTDecodingError) {
        let folderCount = try reader.count(limit: Int.max, field: .operationsPerBatch, minimumElementBytes: 18)
        var folders: [FolderID: [OperationID]] = [:]
        for _ in 0..<folderCount {
            let folder = try Self.readID(&reader)
            folders[folder] = try Self.readIDs(&reader)
        }
        folderTags = AddWinsSet(tags: folders)
        let nameCount = try reader.count(limit: Int.max, field: .operationsPerBatch, minimumElementBytes: 37)
        for _ in 0..<nameCount {
            let folder = try Self.readID(&reader)
            let name = try reader.string().text
            let (timestamp, writer) = try Self.readStamp(&reader)
            folderNames[folder] = LWWRegister(value: name, timestamp: timestamp, writer: writer)
        }
    }

    private static func readID(_ reader: inout ByteReader) throws(CRDTDecodingError) -> OperationID {
        let replica = try reader.replicaID()
        return OperationID(replica: replica, counter: try reader.varint())
    }

    private static func readIDs(_ reader: inout ByteReader) throws(CRDTDecodingError) -> [OperationID] {
        let count = try reader.count(limit: Int.max, field: .spansPerOperation, minimumElementBytes: 17)
        guard count > 0 else { throw .inconsistentSnapshot }
        var ids: [OperationID] = []
        ids.reserveCapacity(count)
        for _ in 0..<count { ids.append(try readID(&reader)) }
        return ids.sorted()
    }

    private static func readStamp(_ reader: inout ByteReader) throws(CRDTDecodingError) -> (HLCTimestamp, OperationID) {
        let timestamp = try reader.timestamp()
        return (timestamp, try readID(&reader))
    }
}
