import NIOCore
import Testing

@testable import CloakServerHTTP

/// The server's pre-encoded data frames (RFC 6455 §5.2): FIN + binary opcode, no mask, and the
/// payload length in the shortest of the three forms, at each boundary.
@Suite struct OutboundFrameTests {
    @Test(arguments: [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
    func binaryFramesCarryTheirLengthInTheShortestForm(length: Int) {
        let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var frame = OutboundQueue.binaryFrame(payload)
        #expect(frame.readInteger(as: UInt8.self) == 0x82, "FIN and opcode 2 (binary)")
        let first = frame.readInteger(as: UInt8.self) ?? 0xFF
        #expect(first & 0x80 == 0, "server frames are not masked")
        let declared: Int?
        switch first & 0x7F {
        case 126:
            declared = frame.readInteger(as: UInt16.self).map(Int.init)
            #expect(length >= 126 && length <= 0xFFFF)
        case 127:
            declared = frame.readInteger(as: UInt64.self).map(Int.init)
            #expect(length > 0xFFFF)
        case let short:
            declared = Int(short)
            #expect(length < 126)
        }
        #expect(declared == length)
        #expect(frame.readBytes(length: frame.readableBytes) == payload)
    }
}
