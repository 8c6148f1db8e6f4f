import CloakTesting
import NIOCore
import NIOWebSocket
import Testing

@testable import CloakServerHTTP

/// The word-at-a-time unmasking computes what NIO's byte loop computes (RFC 6455 §5.3), for
/// every tail length and key offset; every WebSocket test also runs through it end to end.
@Suite struct WebSocketUnmaskerTests {
    @Test func matchesNIOForEveryLengthAndOffset() {
        var random = SeededRandom(seed: 0x5EC_3A5C)
        for length in Array(0...40) + [1_314, 65_537] {
            for offset in 0..<4 {
                let key = WebSocketMaskingKey((0..<4).map { _ in UInt8.random(in: 0...255, using: &random) })!
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                var ours = ByteBuffer(bytes: bytes)
                WebSocketUnmasker.unmask(&ours, key: key, offset: offset)
                var nio = ByteBuffer(bytes: bytes)
                nio.webSocketUnmask(key, indexOffset: offset)
                #expect(ours == nio, "length \(length), offset \(offset)")
            }
        }
    }

    @Test func framesLeaveUnmaskedWithTheirDataIntactAndShareNothingWithTheInput() {
        let key: WebSocketMaskingKey = [0x11, 0x22, 0x33, 0x44]
        let payload: [UInt8] = Array("conversation bytes that were masked".utf8)
        var masked = ByteBuffer(bytes: payload)
        masked.webSocketMask(key)
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: key, data: masked)
        var data = frame.data
        WebSocketUnmasker.unmask(&data, key: key)
        #expect(Array(data.readableBytesView) == payload)
        #expect(frame.unmaskedData == data, "NIO's unmasking agrees")
        #expect(Array(frame.data.readableBytesView) != payload, "the masked input is untouched (copy on write)")
    }
}
