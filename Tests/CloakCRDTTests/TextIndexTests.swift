import CloakTesting
import Testing

@testable import CloakCRDT

/// White-box checks of `TextTree.index`, whose keys are leaf hints rather than run starts
/// (see its documentation): after any mix of local edits, every character must still be
/// found by id, which is what remote inserts and deletes rely on.
@Suite("Text index (white box)")
struct TextIndexTests {
    @Test(
        "every character stays findable by id through typing, backspacing, forward deletes and leaf splits",
        arguments: [1, 2, 3] as [UInt64])
    func everyCharacterFindable(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var device = Device(1)
        let message = try device.doc.createMessage(
            parent: nil, role: .user, text: "", replica: &device.replica, physicalMillis: device.now)
        for round in 0..<60 {
            _ = try TextSequenceTests.typingSessions(on: &device, in: message.id, rng: &rng)
            if round % 6 == 5 { Self.expectEveryCharacterFindable(device.doc) }
        }
        Self.expectEveryCharacterFindable(device.doc)
        #expect(device.doc.tree.texts.first.map { $0.leafCount > 4 } == true)
    }

    /// Looks up the first, a middle and the last character of every run by id.
    static func expectEveryCharacterFindable(_ doc: ConversationDocument) {
        for text in doc.tree.texts {
            for leaf in text.leaves.indices {
                for run in text.leaves[leaf].runs {
                    for offset in Set([0, Int(run.length) / 2, Int(run.length) - 1]) {
                        let id = run.id &+ UInt64(offset)
                        let location = text.locate(id)
                        #expect(location?.leaf == leaf, "character \(id) of leaf \(leaf)")
                        #expect(location.map { text.leaves[$0.leaf].runs[$0.run].id } == run.id)
                        #expect(location?.offset == offset)
                    }
                }
            }
        }
    }
}
