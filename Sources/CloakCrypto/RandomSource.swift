import CSodium

/// Where every random byte in Cloak comes from: nonces, keys, seeds, server challenges.
///
/// ```swift
/// @_spi(Randomness) import CloakCrypto
/// let rng: any RandomSource = SystemRandom()
/// let key = SymmetricKey.random(using: rng)
/// ```
///
/// Production code uses ``SystemRandom`` (libsodium's `randombytes_buf`, which reads the
/// kernel CSPRNG). The whole protocol is SPI (`@_spi(Randomness)`): the cores take a source so
/// the simulator and the vectors are reproducible from a seed (CloakTesting's
/// `DeterministicRandom` and `FixedBytesRandom`, THREATS.md: "the simulator may inject a seeded
/// randombytes"), but an app that imports Cloak's modules normally cannot name the protocol, so
/// it can neither pass a source of its own nor choose a nonce (ADV-14; `NonceChoiceTests`
/// type-checks such an app against the built modules and expects it to fail).
@_spi(Randomness)
public protocol RandomSource: Sendable {
    /// Fills `buffer` with random bytes.
    func fill(_ buffer: UnsafeMutableRawBufferPointer)
}

@_spi(Randomness)
extension RandomSource {
    /// Returns `count` random bytes.
    public func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    /// A uniformly random integer in `0..<upperBound` without modulo bias.
    public func uniform(_ upperBound: UInt32) -> UInt32 {
        precondition(upperBound > 0, "uniform(0) has no valid result")
        let limit = UInt32.max - (UInt32.max % upperBound)
        while true {
            var value: UInt32 = 0
            withUnsafeMutableBytes(of: &value) { fill($0) }
            if value < limit { return value % upperBound }
        }
    }
}

/// The operating system's cryptographic randomness, through libsodium.
@_spi(Randomness)
public struct SystemRandom: RandomSource {
    /// Creates the system random source.
    public init() {}

    /// Fills `buffer` from `randombytes_buf`.
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        _ = Sodium.ready
        randombytes_buf(base, buffer.count)
    }
}
