import CloakCrypto
import CloakProtocol
import CloakTesting
import CloakVectors
import Foundation
import Testing

/// Hostile bytes (ADV-16, ADV-17): truncated, wrong wire types, unknown bodies, lying lengths,
/// deep nesting, and a seeded mutation corpus. Every input ends in a typed error or a valid
/// frame, never a trap or an allocation the input's size does not pay for.
@Suite("Malformed input")
struct MalformedInputTests {
    static let limit = ProtocolLimits().maxFrameBytes

    static func isMalformed(_ bytes: [UInt8]) -> Bool {
        do {
            _ = try FrameCodec.decode(bytes, maxFrameBytes: limit)
            return false
        } catch {
            if case .malformedFrame = error { return true }
            return false
        }
    }

    @Test("every truncation of every sample frame is a malformed frame or a valid shorter one")
    func truncations() throws {
        var refused = 0
        var total = 0
        for (_, frame) in try ProtocolVectors.sampleFrames() {
            let bytes = FrameCodec.encode(frame)
            for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
                total += 1
                do { _ = try FrameCodec.decode(Array(bytes.prefix(length)), maxFrameBytes: Self.limit) } catch {
                    guard case .malformedFrame = error else { Issue.record("unexpected \(error)"); continue }
                    refused += 1
                }
            }
        }
        #expect(refused > total / 2)
        TestData.report(
            "truncations: \(refused) of \(total) refused as malformed, \(total - refused) decoded as valid prefixes")
    }

    @Test("empty input, an unknown body only, a body of the wrong wire type, bad tags are malformed")
    func structure() {
        #expect(Self.isMalformed([]))
        var unknown = ProtoBytes()
        unknown.bytesField(99, [1, 2, 3])
        #expect(Self.isMalformed(unknown.bytes))
        #expect(throws: ProtocolError.malformedFrame("no known frame body")) {
            try FrameCodec.decode(unknown.bytes, maxFrameBytes: Self.limit)
        }
        var pingAsVarint = ProtoBytes()
        pingAsVarint.varintField(55, 1)
        #expect(Self.isMalformed(pingAsVarint.bytes))
        // A known field with the wrong wire type is an unknown field (protobuf's rule): ignored.
        var requestIDAsBytes = ProtoBytes()
        requestIDAsBytes.bytesField(1, [1])
        requestIDAsBytes.bytesField(55, [])
        let lenient = try? FrameCodec.decode(requestIDAsBytes.bytes, maxFrameBytes: Self.limit)
        #expect(lenient?.requestID == 0 && lenient?.body?.name == "ping")
        // Wire types 6 and 7 do not exist; field number 0 is invalid.
        #expect(Self.isMalformed([0x0e, 0x00]) && Self.isMalformed([0x0f, 0x00]) && Self.isMalformed([0x00, 0x00]))
        // Unknown fields next to a known body are skipped (forward compatibility).
        var withUnknown = ProtoBytes()
        withUnknown.bytesField(99, [1, 2, 3])
        withUnknown.bytesField(55, [])
        #expect(!Self.isMalformed(withUnknown.bytes))
    }

    @Test("lying lengths (up to 2^63 and 2^64 − 1) and overlong varints fail without allocating")
    func lyingLengths() {
        for declared: UInt64 in [10, 1 << 20, 1 << 31, 1 << 32, 1 << 62, 1 << 63, .max] {
            var push = ProtoBytes()
            push.lyingBytesField(43, declared: declared, [0x0a, 0x02, 1, 2])
            #expect(Self.isMalformed(push.bytes), "declared \(declared)")
            // The same lie one level down: a change set inside a well-formed Push.
            var inner = ProtoBytes()
            inner.lyingBytesField(1, declared: declared, [1, 2, 3])
            var outer = ProtoBytes()
            outer.bytesField(43, inner.bytes)
            #expect(Self.isMalformed(outer.bytes), "inner declared \(declared)")
        }
        // A varint longer than 10 bytes.
        #expect(Self.isMalformed([0x08] + [UInt8](repeating: 0xff, count: 11) + [0x01]))
        // A packed repeated field (ServerHello.versions) claiming 2^40 bytes.
        var packed = ProtoBytes()
        packed.lyingBytesField(1, declared: 1 << 40, [1, 1])
        var hello = ProtoBytes()
        hello.bytesField(10, packed.bytes)
        #expect(Self.isMalformed(hello.bytes))
    }

    @Test("deep nesting (unknown groups and messages) is refused instead of exhausting the stack")
    func deepNesting() {
        let depth = 100_000
        // Unknown field 99 as nested start-group tags (wire type 3), never closed.
        let groups = Array([[UInt8]](repeating: [0x9b, 0x06], count: depth).joined())
        #expect(Self.isMalformed(groups))
        // Nested length-delimited unknown fields inside a known body.
        var nested: [UInt8] = []
        for _ in 0..<200 {
            var level = ProtoBytes()
            level.bytesField(99, nested)
            nested = level.bytes
        }
        var frame = ProtoBytes()
        frame.bytesField(55, nested)
        _ = try? FrameCodec.decode(frame.bytes, maxFrameBytes: Self.limit)
    }

    @Test("a repeated field with many elements costs no more than the frame's own bytes")
    func repeatedCounts() throws {
        // 200,000 empty change sets in a 400 KB frame: decodes (the server then answers
        // TOO_MANY_CHANGE_SETS); anything more needs a larger frame, which the limit refuses.
        var push = ProtoBytes()
        for _ in 0..<200_000 { push.bytesField(1, []) }
        var frame = ProtoBytes()
        frame.bytesField(43, push.bytes)
        let decoded = try FrameCodec.decode(frame.bytes, maxFrameBytes: Self.limit)
        guard case .push(let p) = decoded.body else { Issue.record("not a push"); return }
        #expect(p.changeSets.count == 200_000 && frame.bytes.count < 500_000)
        #expect(throws: ProtocolError.self) { try FrameCodec.decode(frame.bytes, maxFrameBytes: 100_000) }
    }
}
