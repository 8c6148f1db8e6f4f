/// The simulator's scheduling randomness: SplitMix64 (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014), seeded from the run's seed. It decides
/// latencies, faults and the workload — never a key or a nonce: the devices' cryptography draws
/// from their own seeded libsodium streams (`DeterministicRandom`).
public struct SimRandom: Sendable {
    private var state: UInt64

    /// A stream determined by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<bound` (bound > 0); the tiny modulo bias is irrelevant to scheduling.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "below(0)")
        return Int(next() % UInt64(bound))
    }

    /// Uniform in `range`.
    public mutating func within(_ range: ClosedRange<Int>) -> Int { range.lowerBound + below(range.count) }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }

    /// One element of a non-empty collection.
    public mutating func pick<C: RandomAccessCollection>(_ elements: C) -> C.Element where C.Index == Int {
        elements[elements.startIndex + below(elements.count)]
    }

    /// A new independent stream (for one device or one account), so adding draws in one place
    /// does not shift every other decision.
    public mutating func split() -> SimRandom { SimRandom(seed: next()) }
}
