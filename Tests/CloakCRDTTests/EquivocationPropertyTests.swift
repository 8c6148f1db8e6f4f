import CloakCRDT
import CloakTesting
import Testing

/// ADV-47 as a property: a device that equivocates (signs, after some of its operations, a
/// second operation with the same id and other content) is refused identically by every
/// replica, whatever order the authors' streams interleave in, as long as each author's own
/// order is kept (which per-author change-set chains guarantee).
@Suite("Equivocation properties (seeded, ADV-47)")
struct EquivocationPropertyTests {
    @Test("every replica rejects the reused ids and reaches the same state", arguments: [41, 42, 43, 44] as [UInt64])
    func equivocationConverges(seed: UInt64) throws {
        var workload = RandomWorkload(devices: 3, seed: seed)
        try workload.run(steps: 240)
        var rng = SeededRandom(seed: seed &* 7)
        var streams = workload.generated
        var longer: [OperationID] = []
        var stream: [CRDTOperation] = []
        for op in streams[0] {
            stream.append(op)
            guard Int.random(in: 0..<3, using: &rng) == 0, let (forged, extends) = Self.forgery(of: op) else {
                continue
            }
            stream.append(forged)
            if extends { longer.append(forged.id) }
        }
        streams[0] = stream
        #expect(!longer.isEmpty)

        var hashes: Set<[UInt8]> = []
        for _ in 0..<4 {
            var document = ConversationDocument()
            var next = [Int](repeating: 0, count: streams.count)
            var reused: [OperationID] = []
            while let author = Self.pick(next, streams, &rng) {
                let take = min(streams[author].count - next[author], Int.random(in: 1...6, using: &rng))
                let batch = Array(streams[author][next[author]..<(next[author] + take)])
                next[author] += take
                let report = document.apply(batch, physicalMillis: workload.devices[0].now)
                reused += report.rejected.filter { $0.reason == .reusedOperationID }.map(\.id)
            }
            #expect(document.pendingCount == 0)
            #expect(Set(longer).isSubset(of: Set(reused)), "every longer reuse is reported")
            hashes.insert(document.stateHash.bytes)
        }
        #expect(hashes.count == 1)
        TestData.report("equivocation \(seed): \(stream.count) ops by the equivocator, \(longer.count) longer reuses")
    }

    /// An author with operations left, chosen at random.
    static func pick(_ next: [Int], _ streams: [[CRDTOperation]], _ rng: inout SeededRandom) -> Int? {
        let open = streams.indices.filter { next[$0] < streams[$0].count }
        return open.isEmpty ? nil : open[Int.random(in: 0..<open.count, using: &rng)]
    }

    /// The same id with other content: longer text (its span runs past the original's, so
    /// every replica must refuse it), or another register value (refused where the original
    /// still wins, a no-op duplicate elsewhere: either way it changes nothing).
    static func forgery(of op: CRDTOperation) -> (CRDTOperation, extends: Bool)? {
        let payload: OperationPayload
        switch op.payload {
        case .createMessage(let parent, let role, let text):
            payload = .createMessage(parent: parent, role: role, text: text + "~forged")
        case .insertText(let message, let after, let before, let text):
            payload = .insertText(message: message, after: after, before: before, text: text + "~forged")
        case .setMetadata(let field, _):
            return (CRDTOperation(id: op.id, timestamp: op.timestamp, payload: .setMetadata(field, .text("~"))), false)
        default:
            return nil
        }
        return (CRDTOperation(id: op.id, timestamp: op.timestamp, payload: payload), true)
    }
}
