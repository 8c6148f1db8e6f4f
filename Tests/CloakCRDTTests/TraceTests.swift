import CloakCRDT
import CloakTesting
import Testing

/// Real editing histories (josephg/editing-traces) replayed through one message's text.
@Suite("Editing traces")
struct TraceTests {
    @Test("automerge-paper: local replay, then merge from encoded ops and snapshot, all equal endContent")
    func automergePaper() throws {
        let trace = try EditingTrace.load("automerge-paper.json.gz")
        var device = Device(1)
        let create = try device.doc.createMessage(
            parent: nil, role: .user, text: trace.startContent, replica: &device.replica, physicalMillis: device.now)
        var ops = [create]
        ops.reserveCapacity(300_000)
        for transaction in trace.transactions {
            for patch in transaction.patches {
                if patch.deleted > 0 {
                    ops.append(
                        try device.doc.deleteText(
                            in: create.id, range: patch.position..<(patch.position + patch.deleted),
                            replica: &device.replica, physicalMillis: device.now))
                }
                if !patch.inserted.isEmpty {
                    ops.append(
                        try device.doc.insertText(
                            patch.inserted, into: create.id, at: patch.position, replica: &device.replica,
                            physicalMillis: device.now))
                }
            }
        }
        #expect(device.doc.text(of: create.id) == trace.endContent)

        let encoded = OperationBatch.encode(ops)
        var merged = ConversationDocument()
        let report = merged.apply(try OperationBatch.decode(encoded), physicalMillis: device.now)
        #expect(report.rejected.isEmpty && report.pendingCount == 0)
        #expect(merged.text(of: create.id) == trace.endContent)
        #expect(merged.stateHash == device.doc.stateHash)

        let loaded = try ConversationDocument(snapshot: device.doc.snapshot())
        #expect(loaded.text(of: create.id) == trace.endContent)
        #expect(loaded.stateHash == device.doc.stateHash)
        TestData.report("automerge-paper: \(ops.count) ops, \(encoded.count) encoded bytes")
    }

    @Test("friendsforever: each agent on its own replica, merged by the trace's parents")
    func friendsForever() throws {
        let trace = try EditingTrace.load("friendsforever.json.gz")
        var devices = [Device(1), Device(2)]
        var setup = Device(99)
        let create = try setup.doc.createMessage(
            parent: nil, role: .user, text: trace.startContent, replica: &setup.replica, physicalMillis: setup.now)
        for index in devices.indices { _ = devices[index].doc.apply([create], physicalMillis: setup.now) }

        // Per agent: its transactions' ops in order, and how many of each agent's
        // transactions each device has seen (the trace's agents edit causal chains).
        let versions = Self.versionVectors(trace)
        var opsByAgent: [[[CRDTOperation]]] = [[], []]
        var seen = [[0, 0], [0, 0]]
        for (index, transaction) in trace.transactions.enumerated() {
            let agent = transaction.agent
            let other = 1 - agent
            let needed = versions[index].parents[other]
            #expect(seen[agent][other] <= needed)
            while seen[agent][other] < needed {
                let batch = opsByAgent[other][seen[agent][other]]
                let report = devices[agent].doc.apply(
                    try OperationBatch.decode(OperationBatch.encode(batch)), physicalMillis: setup.now)
                #expect(report.rejected.isEmpty)
                seen[agent][other] += 1
            }
            var produced: [CRDTOperation] = []
            for patch in transaction.patches {
                produced += try Self.replay(patch, on: &devices[agent], message: create.id)
            }
            opsByAgent[agent].append(produced)
            seen[agent][agent] += 1
        }
        for agent in 0..<2 {
            let other = 1 - agent
            let rest = opsByAgent[other][seen[agent][other]...].flatMap { $0 }
            _ = devices[agent].doc.apply(rest, physicalMillis: setup.now)
            #expect(devices[agent].doc.pendingCount == 0)
            #expect(devices[agent].doc.text(of: create.id) == trace.endContent)
        }
        #expect(devices[0].doc.stateHash == devices[1].doc.stateHash)
    }

    private static func replay(
        _ patch: EditingTrace.Patch, on device: inout Device, message: MessageID
    ) throws
        -> [CRDTOperation]
    {
        var ops: [CRDTOperation] = []
        if patch.deleted > 0 {
            ops.append(
                try device.doc.deleteText(
                    in: message, range: patch.position..<(patch.position + patch.deleted), replica: &device.replica,
                    physicalMillis: device.now))
        }
        if !patch.inserted.isEmpty {
            ops.append(
                try device.doc.insertText(
                    patch.inserted, into: message, at: patch.position, replica: &device.replica,
                    physicalMillis: device.now))
        }
        return ops
    }

    /// For each transaction, how many transactions of each agent its parents cover.
    private static func versionVectors(_ trace: EditingTrace) -> [(parents: [Int], own: [Int])] {
        var result: [(parents: [Int], own: [Int])] = []
        var sequence: [Int] = []
        var counts = [0, 0]
        for transaction in trace.transactions {
            var vector = [0, 0]
            for parent in transaction.parents {
                let own = result[parent].own
                vector = [max(vector[0], own[0]), max(vector[1], own[1])]
            }
            sequence.append(counts[transaction.agent])
            counts[transaction.agent] += 1
            var own = vector
            own[transaction.agent] = counts[transaction.agent]
            result.append((vector, own))
        }
        return result
    }
}
