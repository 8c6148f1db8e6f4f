import CloakCRDT
import CloakTesting
import Testing

/// ADV-07: any delivery order, with duplicates and delays, converges.
@Suite("Convergence properties (seeded)")
struct ConvergencePropertyTests {
    static let cases: [(devices: Int, seed: UInt64)] = [(2, 11), (3, 12), (4, 13), (5, 14), (3, 15), (2, 16)]

    @Test("replicas converge to equal hashes and renderings under shuffled, duplicated delivery", arguments: cases)
    func convergence(devices: Int, seed: UInt64) throws {
        var workload = RandomWorkload(devices: devices, seed: seed)
        try workload.run(steps: 320)
        // Diverged replicas, with branches and deletions: the tip a new message follows is the
        // active path's last message.
        for device in workload.devices { #expect(device.doc.activeTip() == device.doc.activePath().last) }
        let midway = workload.devices[0].doc.snapshot()
        workload.deliverAll()

        let reference = workload.devices[0].doc
        #expect(reference.messageCount > 5)
        #expect(reference.activeBranch().contains { !$0.text.isEmpty })
        TestData.report(
            "convergence \(devices)×\(seed): \(workload.allOperations.count) ops, \(reference.messageCount) messages, "
                + "\(reference.textRunCount) runs, active \(reference.activeBranch().map(\.text.count))")
        for device in workload.devices {
            #expect(device.doc.pendingCount == 0)
            #expect(device.doc.stateHash == reference.stateHash)
            #expect(device.doc.rendered == reference.rendered)
            #expect(device.doc.metadata == reference.metadata)
            #expect(device.doc.readMarkers == reference.readMarkers)
            #expect(device.doc.activeTip() == reference.activePath().last)
        }

        // A fresh replica that receives everything at once, newest first.
        var fresh = ConversationDocument()
        let report = fresh.apply(workload.allOperations.reversed(), physicalMillis: workload.devices[0].now)
        #expect(report.rejected.isEmpty && report.overflowed.isEmpty && fresh.pendingCount == 0)
        #expect(fresh.stateHash == reference.stateHash)

        // Snapshot → load gives an equal state.
        let loaded = try ConversationDocument(snapshot: reference.snapshot())
        #expect(loaded.stateHash == reference.stateHash)
        #expect(loaded.rendered == reference.rendered)
        #expect(loaded.snapshot() == reference.snapshot())

        // A snapshot taken midway, merged with every operation, equals replaying everything.
        var resumed = try ConversationDocument(snapshot: midway)
        var rng = SeededRandom(seed: seed &* 31)
        _ = resumed.apply(workload.allOperations.shuffled(seed: &rng), physicalMillis: workload.devices[0].now)
        #expect(resumed.stateHash == reference.stateHash)
        #expect(resumed.rendered == reference.rendered)
    }

    @Test(
        "encoded batches (coalesced) converge to the same state as the raw operations", arguments: [21, 22] as [UInt64])
    func encodedBatchesConverge(seed: UInt64) throws {
        var workload = RandomWorkload(devices: 3, seed: seed)
        try workload.run(steps: 200)
        workload.deliverAll()
        var decoded = ConversationDocument()
        var rng = SeededRandom(seed: seed)
        for ops in workload.generated.shuffled(seed: &rng) {
            let batch = try OperationBatch.decode(OperationBatch.encode(ops))
            _ = decoded.apply(batch, physicalMillis: workload.devices[0].now)
        }
        #expect(decoded.pendingCount == 0)
        #expect(decoded.stateHash == workload.devices[0].doc.stateHash)
        // Applying the raw operations again after the coalesced ones changes nothing.
        let report = decoded.apply(workload.allOperations, physicalMillis: workload.devices[0].now)
        #expect(report.applied.isEmpty)
        #expect(decoded.stateHash == workload.devices[0].doc.stateHash)
    }
}
