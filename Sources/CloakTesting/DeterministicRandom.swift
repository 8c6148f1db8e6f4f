@_spi(Randomness) public import CloakCrypto
import CSodium
import Synchronization

/// A reproducible random source for test vectors and deterministic simulation (never in an
/// app: it lives in this test-support module, and the protocol it implements is SPI): the stream is
/// `randombytes_buf_deterministic(seed ‖ block counter)`, so equal seeds give equal byte streams.
///
/// Never use it for real keys: anyone who knows the seed knows every byte.
@_spi(Randomness)
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

    // libsodium picks its ChaCha20 implementation in sodium_init; initialise it once (the
    // output does not depend on the pick).
    private static let sodiumReady: Bool = sodium_init() >= 0

    private static func refill(_ s: inout Stream) {
        _ = sodiumReady
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
@_spi(Randomness)
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
