import CloakCRDT
import CloakTesting

/// A deterministic replica id for tests: `n` in the low word.
func testReplicaID(_ n: UInt64) -> ReplicaID {
    ReplicaID(high: 0xC10A_4000_0000_0000, low: n)
}

/// One simulated device: its generator and its copy of a conversation.
struct Device {
    var replica: Replica
    var doc = ConversationDocument()
    var now: UInt64 = 1_700_000_000_000

    init(_ n: UInt64) {
        replica = Replica(id: testReplicaID(n))
    }

    /// Advances this device's physical clock a little and returns it.
    mutating func tick() -> UInt64 {
        now += 3
        return now
    }
}

extension ConversationDocument {
    /// The active branch as (role, text) pairs, for equality checks.
    var rendered: [String] {
        activeBranch().map { "\($0.role)|\($0.isDeleted)|\($0.text)|\($0.reactions.map(\.emoji))" }
    }
}

extension Array {
    /// A seeded shuffle (Fisher–Yates).
    func shuffled(seed rng: inout SeededRandom) -> [Element] {
        var copy = self
        copy.shuffle(using: &rng)
        return copy
    }
}
