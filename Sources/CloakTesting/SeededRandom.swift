/// A small, fast, seeded pseudo-random generator for tests, property tests and the simulator.
///
/// ```swift
/// var rng = SeededRandom(seed: 42)
/// let n = Int.random(in: 0..<10, using: &rng)
/// ```
///
/// It is SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): one 64-bit state word, full period, good enough statistical quality for
/// scheduling and workload generation. It is **not** cryptographic; production key material
/// always comes from libsodium's `randombytes`. Tests pass the seed explicitly so every run is
/// reproducible (STYLE.md pitfall 8).
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator whose whole output is determined by `seed`.
    public init(seed: UInt64) {
        state = seed
    }

    /// Returns the next 64 pseudo-random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Returns `count` pseudo-random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            var word = next()
            for _ in 0..<min(8, count - out.count) {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return out
    }

    /// Derives an independent generator, so that one seed can drive several streams
    /// (devices, network, faults) without one stream's consumption shifting another's.
    public mutating func split() -> SeededRandom {
        SeededRandom(seed: next())
    }
}
