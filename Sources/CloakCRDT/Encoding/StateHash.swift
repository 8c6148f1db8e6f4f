/// A 16-byte digest of a document's canonical state, for convergence checks: equal states
/// have equal hashes whatever order their operations arrived in.
///
/// ```swift
/// if phone.stateHash != laptop.stateHash { reportDivergence() }
/// ```
///
/// It is two SipHash-2-4 streams (Aumasson and Bernstein, 2012) with fixed, public keys over
/// the canonical state encoding (the snapshot encoding without held operations). It is
/// **not** a security mechanism: the keys are public, so anyone can build collisions. Use it
/// to detect accidental divergence; integrity comes from the signed, AEAD-sealed change sets.
public struct StateHash: Hashable, Sendable, CustomStringConvertible {
    /// The 16 digest bytes.
    public let bytes: [UInt8]

    /// The digest of `data` (a canonical state; the vectors also hash raw inputs).
    package init(of data: [UInt8]) {
        let first = SipHash24.hash(data, key0: 0x436C_6F61_6B43_5244, key1: 0x5354_4154_4548_4153)
        let second = SipHash24.hash(data, key0: 0x0706_0504_0302_0100, key1: 0x0F0E_0D0C_0B0A_0908)
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for word in [first, second] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        bytes = out
    }

    /// Lower-case hex.
    public var description: String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
    }
}

/// SipHash-2-4 with 64-bit output, as specified by its authors (reference `siphash.c`).
struct SipHash24 {
    private var v0: UInt64
    private var v1: UInt64
    private var v2: UInt64
    private var v3: UInt64

    private init(key0: UInt64, key1: UInt64) {
        v0 = 0x736F_6D65_7073_6575 ^ key0
        v1 = 0x646F_7261_6E64_6F6D ^ key1
        v2 = 0x6C79_6765_6E65_7261 ^ key0
        v3 = 0x7465_6462_7974_6573 ^ key1
    }

    private mutating func round() {
        v0 = v0 &+ v1
        v1 = v1.rotatedLeft(13) ^ v0
        v0 = v0.rotatedLeft(32)
        v2 = v2 &+ v3
        v3 = v3.rotatedLeft(16) ^ v2
        v0 = v0 &+ v3
        v3 = v3.rotatedLeft(21) ^ v0
        v2 = v2 &+ v1
        v1 = v1.rotatedLeft(17) ^ v2
        v2 = v2.rotatedLeft(32)
    }

    private mutating func compress(_ m: UInt64) {
        v3 ^= m
        round()
        round()
        v0 ^= m
    }

    static func hash(_ data: [UInt8], key0: UInt64, key1: UInt64) -> UInt64 {
        var state = SipHash24(key0: key0, key1: key1)
        let count = data.count
        let blocks = count / 8
        data.withUnsafeBytes { raw in
            for block in 0..<blocks {
                state.compress(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: block * 8, as: UInt64.self)))
            }
        }
        var last = UInt64(truncatingIfNeeded: count) << 56
        for index in (blocks * 8)..<count {
            last |= UInt64(data[index]) << UInt64(8 * (index - blocks * 8))
        }
        state.compress(last)
        state.v2 ^= 0xFF
        for _ in 0..<4 { state.round() }
        return state.v0 ^ state.v1 ^ state.v2 ^ state.v3
    }
}

extension UInt64 {
    fileprivate func rotatedLeft(_ amount: UInt64) -> UInt64 {
        (self << amount) | (self >> (64 - amount))
    }
}
