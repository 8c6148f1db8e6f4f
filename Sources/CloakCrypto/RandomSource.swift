import CSodium
import Synchronization

/// Where every random byte in Cloak comes from: nonces, keys, seeds, server challenges.
///
/// ```swift
/// let rng: any RandomSource = SystemRandom()
/// let key = SymmetricKey.random(using: rng)
/// ```
///
/// Production code uses ``SystemRandom`` (libsodium's `randombytes_buf`, which reads the
/// kernel CSPRNG). ``DeterministicRandom`` exists so protocol test vectors and the simulator
/// are reproducible from a seed (docs/threats.md "What the simulator runs");
/// it is libsodium's ChaCha20-based `randombytes_buf_deterministic`, never a home-made PRNG.
public protocol RandomSource: Sendable {
    /// Fills `buffer` with random bytes.
    func fill(_ buffer: UnsafeMutableRawBufferPointer)
}

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

/// A reproducible random source for test vectors and deterministic simulation: the stream is
/// `randombytes_buf_deterministic(seed ‖ block counter)`, so equal seeds give equal byte streams.
///
/// Never use it for real keys: anyone who knows the seed knows every byte.
public final class DeterministicRandom: RandomSource {
    private struct Stream {
        var seed: [UInt8]
        var block: UInt64 = 0
        var buffer: [UInt8] = []
        var position = 0
    }

    // Shared by reference so several components drawing from one stream stay in a single
    // reproducible order; the mutex makes that safe across tasks.
    private let stream: Mutex<Stream>

    /// Creates a stream determined entirely by `seed` (any 64-bit value).
    public init(seed: UInt64) {
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: seed >> (8 * UInt64(i))) }
        stream = Mutex(Stream(seed: bytes))
    }

    /// Fills `buffer` with the next bytes of the stream.
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard buffer.count > 0 else { return }
        _ = Sodium.ready
        stream.withLock { s in
            var written = 0
            while written < buffer.count {
                if s.position == s.buffer.count { Self.refill(&s) }
                let take = Swift.min(s.buffer.count - s.position, buffer.count - written)
                for i in 0..<take { buffer[written + i] = s.buffer[s.position + i] }
                s.position += take
                written += take
            }
        }
    }

    private static func refill(_ s: inout Stream) {
        var blockSeed = s.seed
        for i in 0..<8 { blockSeed[24 + i] = UInt8(truncatingIfNeeded: s.block >> (8 * UInt64(i))) }
        s.block += 1
        var out = [UInt8](repeating: 0, count: 256)
        out.withUnsafeMutableBytes { o in
            randombytes_buf_deterministic(o.baseAddress!, 256, blockSeed)
        }
        s.buffer = out
        s.position = 0
    }
}

/// A random source that replays fixed bytes, for known-answer tests whose expected output
/// depends on a specific nonce (Wycheproof, protocol vectors). Running out is a bug in the
/// test that uses it, so it traps rather than returning predictable zeros.
public final class FixedBytesRandom: RandomSource {
    private let remaining: Mutex<[UInt8]>

    /// Creates a source that returns exactly `bytes`, in order, across all `fill` calls.
    public init(_ bytes: [UInt8]) {
        remaining = Mutex(bytes)
    }

    /// Copies the next `buffer.count` bytes.
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        remaining.withLock { bytes in
            precondition(bytes.count >= buffer.count, "FixedBytesRandom exhausted")
            for i in 0..<buffer.count { buffer[i] = bytes[i] }
            bytes.removeFirst(buffer.count)
        }
    }
}
