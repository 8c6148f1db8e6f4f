extension ConversationDocument {
    static let snapshotMagic: [UInt8] = Array("CKCS".utf8)
    static let snapshotVersion: UInt8 = 2

    /// The whole state as bytes: what the client persists and what a snapshot change set
    /// carries. `ConversationDocument(snapshot:)` restores a state equal to replaying every
    /// operation it covers (held operations included, so nothing held is lost).
    ///
    /// Format (version 2, varints as in `OperationBatch`; `ref` = 0 for none or replica
    /// index + 1, then the counter):
    /// ```
    /// "CKCS" 0x02
    /// replicas: count · 16-byte ids, strictly ascending (indices below refer to this table)
    /// applied:  count · (replica index · intervalCount · (start gap · length)*)
    /// content:  byte count · UTF-8 of every live run, in message then run order
    /// messages: count · per message, in preorder (a message, then its children's subtrees in
    ///           sibling order: created HLC, author, counter; siblings strictly ascending):
    ///   flags u8 (bits 0–1 role, 2 deleted, 3 reactions follow, 4–5 text shape, 6–7 zero)
    ///   · replica index · counter
    ///   · parent: 0 for a root message, else how many records back the parent's record is
    ///   · created millis minus the previous record's (zig-zag; from 0 for the first)
    ///   · created logical
    ///   · text: shape 0 (empty): nothing
    ///           shape 1 (plain: one live run, first id = message id + 1, no origins):
    ///             length · (byteCount − length)
    ///           shape 2: runCount ≥ 1 · (replica index · counter · ref left · ref right
    ///             · length · state)*, state = 0 for a deleted run, else 1 + byteCount − length
    ///   · [reactions: count ≥ 1 · (emoji · reactor bytes · tagCount ≥ 1
    ///                             · (replica index · counter)* ascending)* ascending]
    /// branches: count · (ref parent · ref child · timestamp · writer index · writer counter)*
    /// metadata: count · (field · value · timestamp · writer index · writer counter)*
    /// markers:  count · (16-byte device id · timestamp)*
    /// pending:  byte length · an `OperationBatch` of held operations
    /// ```
    /// Runs are written in canonical form (adjacent runs that continue each other merged),
    /// and deleted text is not written at all: a tombstone keeps its ids and origins, not
    /// its content. The layout serves the loader: the content section comes first so it is
    /// validated as UTF-8 in one pass, preorder lets each message find its parent by position
    /// and link by appending, and the one-byte flags let a message that was never edited skip
    /// the run list (it loads without any allocation).
    public func snapshot() -> [UInt8] {
        var writer = canonicalState()
        let pending = OperationBatch.encode(delivery.pending.operations, coalescing: false)
        writer.lengthPrefixed(pending)
        return writer.bytes
    }

    /// The convergence digest of the state (held operations excluded); see `StateHash`.
    public var stateHash: StateHash {
        StateHash(of: canonicalState().bytes)
    }

    /// Canonical replica index of each document replica index, and the sorted table.
    private func canonicalReplicas() -> (table: [ReplicaID], map: [Int]) {
        var all = Set(delivery.applied.keys)
        all.formUnion(replicas.ids)
        let table = all.sorted()
        var position: [ReplicaID: Int] = [:]
        for (index, id) in table.enumerated() { position[id] = index }
        return (table, replicas.ids.map { position[$0] ?? 0 })
    }

    func canonicalState() -> ByteWriter {
        let (table, map) = canonicalReplicas()
        var position: [ReplicaID: Int] = [:]
        for (index, id) in table.enumerated() { position[id] = index }
        var writer = ByteWriter(capacity: arena.count + 64 * tree.nodes.count + 1024)
        writer.bytes.append(contentsOf: Self.snapshotMagic)
        writer.byte(Self.snapshotVersion)
        writer.varint(table.count)
        for id in table { writer.replicaID(id) }
        writeApplied(&writer, position: position)
        // Content goes before the messages so a loader can check each run against it as it
        // reads the run; the messages are therefore written to a second buffer first.
        var content: [UInt8] = []
        content.reserveCapacity(arena.count)
        var messages = ByteWriter(capacity: 32 * tree.nodes.count)
        let order = tree.preorder()
        messages.varint(order.count)
        var record = [Int32](repeating: -1, count: tree.nodes.count)
        var previousMillis: UInt64 = 0
        for (index, slot) in order.enumerated() {
            record[Int(slot)] = Int32(index)
            let parent = tree.nodes[Int(slot)].parent
            // Preorder puts a parent's record first, so the distance back to it is positive.
            let parentDistance = tree.slot(of: parent).map { index - Int(record[$0]) } ?? 0
            writeMessage(
                Int(slot), parentDistance: parentDistance, previousMillis: previousMillis, to: &messages,
                content: &content, map: map, position: position)
            previousMillis = tree.nodes[Int(slot)].created.millis
        }
        writer.lengthPrefixed(content)
        writer.bytes.append(contentsOf: messages.bytes)
        writeRegisters(&writer, map: map, position: position)
        return writer
    }

    private func writeApplied(_ writer: inout ByteWriter, position: [ReplicaID: Int]) {
        let entries = delivery.applied.entries.map { (position[$0.key] ?? 0, $0.value) }.sorted { $0.0 < $1.0 }
        writer.varint(entries.count)
        for (index, set) in entries {
            writer.varint(index)
            writer.varint(set.intervalCount)
            var previous: UInt64 = 0
            for (start, end) in zip(set.starts, set.ends) {
                writer.varint(start - previous)
                writer.varint(end - start)
                previous = end
            }
        }
    }

    func writeRef(_ id: PackedID, map: [Int], to writer: inout ByteWriter) {
        guard id != .none, id.replicaIndex < map.count else {
            writer.varint(UInt64(0))
            return
        }
        writer.varint(map[id.replicaIndex] + 1)
        writer.varint(id.counterValue)
    }

    private func writeRegisters(_ writer: inout ByteWriter, map: [Int], position: [ReplicaID: Int]) {
        func writeStamp(_ timestamp: HLCTimestamp, _ id: OperationID) {
            writer.timestamp(timestamp)
            writer.varint(position[id.replica] ?? 0)
            writer.varint(id.counter)
        }
        let branches = branchChoices.map { (key: $0.key, id: replicas.unpack($0.key), register: $0.value) }
            .sorted { lhs, rhs in
                guard let left = lhs.id else { return rhs.id != nil }
                guard let right = rhs.id else { return false }
                return left < right
            }
        writer.varint(branches.count)
        for branch in branches {
            writeRef(branch.key, map: map, to: &writer)
            writeRef(branch.register.value, map: map, to: &writer)
            writeStamp(branch.register.timestamp, branch.register.writer)
        }
        let fields = metadataRegisters.sorted { Self.fieldOrder($0.key, $1.key) }
        writer.varint(fields.count)
        for (field, register) in fields {
            BatchEncoder.writeField(field, to: &writer)
            BatchEncoder.writeValue(register.value, to: &writer)
            writeStamp(register.timestamp, register.writer)
        }
        let marks = markers.markers.sorted { $0.key < $1.key }
        writer.varint(marks.count)
        for (device, timestamp) in marks {
            writer.replicaID(device)
            writer.timestamp(timestamp)
        }
    }

    /// Canonical field order: the fixed fields, then custom keys by UTF-8 bytes.
    static func fieldOrder(_ lhs: MetadataField, _ rhs: MetadataField) -> Bool {
        func rank(_ field: MetadataField) -> Int {
            switch field {
            case .title: 0
            case .pinned: 1
            case .archived: 2
            case .model: 3
            case .folder: 4
            case .custom: 5
            }
        }
        if case .custom(let a) = lhs, case .custom(let b) = rhs {
            return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
        }
        return rank(lhs) < rank(rhs)
    }
}
