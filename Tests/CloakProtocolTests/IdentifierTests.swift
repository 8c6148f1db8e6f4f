@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

/// Identifiers and digests keep their bytes inline; these check that the inline form behaves
/// exactly like the byte string it stands for (order, equality, hashing, round trips).
@Suite("Identifiers")
struct IdentifierTests {
    /// Random byte strings of `count` bytes, many sharing long prefixes so the order and
    /// equality checks reach the later words.
    static func samples(_ count: Int, seed: UInt64) -> [[UInt8]] {
        var random = SeededRandom(seed: seed)
        var out: [[UInt8]] = []
        for _ in 0..<300 {
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            if let base = out.randomElement(using: &random), Bool.random(using: &random) {
                let keep = Int.random(in: 0...count, using: &random)
                bytes.replaceSubrange(0..<keep, with: base[0..<keep])
            }
            out.append(bytes)
        }
        return out
    }

    static func checkAgainstBytes<T: FixedLengthBytes>(_: T.Type, seed: UInt64) throws {
        let raw = samples(T.byteCount, seed: seed)
        let ids = try raw.map { try T(validating: $0, field: "id") }
        for (id, bytes) in zip(ids, raw) {
            #expect(id.bytes == bytes)
            #expect(id.withUnsafeBytes { Array($0) } == bytes)
            #expect(T(unchecked: bytes) == id)
            #expect(id.isZero == bytes.allSatisfy { $0 == 0 })
        }
        for i in ids.indices {
            for j in ids.indices {
                #expect((ids[i] == ids[j]) == (raw[i] == raw[j]))
                #expect((ids[i] < ids[j]) == raw[i].lexicographicallyPrecedes(raw[j]))
                if ids[i] == ids[j] { #expect(ids[i].hashValue == ids[j].hashValue) }
            }
        }
        #expect(ids.sorted().map(\.bytes) == raw.sorted { $0.lexicographicallyPrecedes($1) })
        #expect(Set(ids).count == Set(raw).count)
    }

    @Test("16- and 32-byte ids order, compare and hash exactly as their bytes do (seeded)")
    func inlineMatchesBytes() throws {
        try Self.checkAgainstBytes(DeviceID.self, seed: 1)
        try Self.checkAgainstBytes(ConversationID.self, seed: 2)
        try Self.checkAgainstBytes(AccountID.self, seed: 3)
        try Self.checkAgainstBytes(Digest32.self, seed: 4)
    }

    @Test("zero, library, slices and the wrong length")
    func edges() throws {
        #expect(Digest32.zero.bytes == [UInt8](repeating: 0, count: 32))
        #expect(Digest32.zero.isZero)
        #expect(ConversationID.library.bytes == [UInt8](repeating: 0, count: 16))
        let wide = Array(0..<40).map(UInt8.init)
        #expect(try AccountID(validating: wide[4..<36], field: "x").bytes == Array(wide[4..<36]))
        #expect(try DeviceID(validating: Data(wide[0..<16]), field: "x").bytes == Array(wide[0..<16]))
        #expect(throws: ProtocolError.invalidField("x must be 32 bytes, got 31")) {
            try AccountID(validating: wide[0..<31], field: "x")
        }
        #expect(throws: ProtocolError.invalidField("x must be 16 bytes, got 32")) {
            try ConversationID(validating: wide[0..<32], field: "x")
        }
        let digest = Digest32(hashing: [1, 2, 3])
        #expect(digest.description == Hex.encode(Array(digest.bytes.prefix(8))))
    }
}
