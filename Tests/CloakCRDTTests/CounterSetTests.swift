@_spi(Randomness) import CloakTesting
import Testing

@testable import CloakCRDT

/// White-box check of `CounterSet`, which now also tracks the spans held operations claim:
/// random inserts and removes agree with a plain set of counters, and the intervals stay
/// sorted, disjoint and non-adjacent (what `coverage` and `gaps` rely on).
@Suite("Counter sets (white box)")
struct CounterSetTests {
    @Test("inserts and removes agree with a reference set", arguments: [5, 6, 7] as [UInt64])
    func matchesReference(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var set = CounterSet()
        var reference = Set<UInt64>()
        for _ in 0..<2_000 {
            let start = UInt64.random(in: 0..<200, using: &rng)
            let count = UInt64.random(in: 1...12, using: &rng)
            if Bool.random(using: &rng) {
                set.insert(start: start, count: count)
                reference.formUnion(start..<(start + count))
            } else {
                set.remove(start: start, count: count)
                reference.subtract(start..<(start + count))
            }
            for (index, (low, high)) in zip(set.starts, set.ends).enumerated() {
                #expect(low < high)
                if index > 0 { #expect(set.ends[index - 1] < low, "intervals stay apart") }
            }
        }
        for counter in 0..<UInt64(220) {
            #expect(set.contains(counter) == reference.contains(counter), "counter \(counter)")
        }
    }
}
