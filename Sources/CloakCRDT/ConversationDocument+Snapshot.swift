extension ConversationDocument {
    static let snapshotMagic: [UInt8] = Array("CKCS".utf8)
    static let snapshotVersion: UInt8 = 1

    /// The whole state as bytes: what the client persists and what a snapshot change set
    /// carries. `ConversationDocument(snapshot:)` restores a state equal to replaying every
    /// operation it covers (held operations included, so nothing held is lost).
    ///
    /// Format (version 1, varints as in `OperationBatch`; `ref` = 0 for none or replica
    /// index + 1, then the counter):
    /// ```
    /// "CKCS" 0x01
    /// replicas: count · 16-byte ids, strictly ascending (indices below refer to this table)
    /// applied:  count · (replica index · intervalCount · (start gap · length)*)
    /// content:  byte count · UTF-8 of every live run, in message then run order
    /// messages: count · per message, in sibling order (created HLC, author bytes, counter):
    ///   replica index · counter · ref parent · role u8 · created · deleted u8
    ///   · runCount · (replica index · counter · ref left · ref right · length · deleted u8
    ///                 · [byteCount if not deleted])*
    ///   · reactionCount · (emoji · reactor bytes · tagCount · (replica index · counter)*)*
    /// branches: count · (ref parent · ref child · timestamp · writer index · writer counter)*
    /// metadata: count · (field · value · timestamp · writer index · writer counter)*
    /// markers:  count · (16-byte device id · timestamp)*
    /// pending:  byte length · an `OperationBatch` of held operations
    /// ```
    /// Runs are written in canonical form (adjacent runs that continue each other merged),
    /// and deleted text is not written at all: a tombstone keeps its ids and origins, not
    /// its content.
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
        var messages = ByteWriter(capacity: 64 * tree.nodes.count)
        let order = tree.nodes.indices.sorted { tree.precedes($0, $1, replicas: replicas) }
        messages.varint(order.count)
        for slot in order {
            writeMessage(slot, to: &messages, content: &content, map: map, position: position)
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

    private func writeRef(_ id: PackedID, map: [Int], to writer: inout ByteWriter) {
        guard id != .none, id.replicaIndex < map.count else {
            writer.varint(UInt64(0))
            return
        }
        writer.varint(map[id.replicaIndex] + 1)
        writer.varint(id.counterValue)
    }

    private func writeMessage(
        _ slot: Int, to writer: inout ByteWriter, content: inout [UInt8], map: [Int], position: [ReplicaID: Int]
    ) {
        let node = tree.nodes[slot]
        writer.varint(map[node.id.replicaIndex])
        writer.varint(node.id.counterValue)
        writeRef(node.parent, map: map, to: &writer)
        writer.byte(node.role.rawValue)
        writer.timestamp(node.created)
        writer.byte(node.isDeleted ? 1 : 0)
        let runs = node.text.canonicalRuns()
        writer.varint(runs.count)
        for run in runs {
            writer.varint(map[run.id.replicaIndex])
            writer.varint(run.id.counterValue)
            writeRef(run.originLeft, map: map, to: &writer)
            writeRef(run.originRight, map: map, to: &writer)
            writer.varint(Int(run.length))
            writer.byte(run.isDeleted ? 1 : 0)
            if !run.isDeleted { writer.varint(Int(run.byteCount)) }
        }
        node.text.visibleBytes(arena: arena, into: &content)
        let reactions = (node.reactions?.tags ?? [:]).sorted { $0.key < $1.key }
        writer.varint(reactions.count)
        for (reaction, tags) in reactions {
            writer.string(reaction.emoji)
            writer.lengthPrefixed(reaction.reactor)
            writer.varint(tags.count)
            for tag in tags {
                writer.varint(position[tag.replica] ?? 0)
                writer.varint(tag.counter)
            }
        }
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
