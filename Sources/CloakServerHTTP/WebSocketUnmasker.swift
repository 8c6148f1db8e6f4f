import NIOCore
import NIOWebSocket

/// Unmasks client frames (RFC 6455 §5.3) eight bytes at a time, right after the frame decoder,
/// and passes them on with no masking key, so Hummingbird's `unmaskedData` hands them through
/// untouched. NIO unmasks one byte per loop iteration: on a push of 64 change sets that was a
/// tenth of the server's CPU per ingested change set. Frames without a key pass unchanged.
final class WebSocketUnmasker: ChannelInboundHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        if let key = frame.maskKey {
            // The key runs on from the extension data into the application data.
            Self.unmask(&frame.data, key: key, offset: frame.extensionData?.readableBytes ?? 0)
            if var extensionData = frame.extensionData {
                Self.unmask(&extensionData, key: key)
                frame.extensionData = extensionData
            }
            frame.maskKey = nil
        }
        context.fireChannelRead(wrapInboundOut(frame))
    }

    /// XORs `buffer`'s readable bytes with `key`, byte `i` with `key[(i + offset) % 4]`
    /// (what NIO's `webSocketMask(_:indexOffset:)` computes).
    static func unmask(_ buffer: inout ByteBuffer, key: WebSocketMaskingKey, offset: Int = 0) {
        let keyBytes = (0..<4).map { key[($0 + offset) % 4] }
        // The key repeated over eight bytes, in memory order, so one XOR covers eight bytes
        // whatever the machine's byte order.
        var pattern: UInt64 = 0
        withUnsafeMutableBytes(of: &pattern) { raw in
            for index in 0..<8 { raw[index] = keyBytes[index % 4] }
        }
        buffer.withUnsafeMutableReadableBytes { bytes in
            let count = bytes.count
            var index = 0
            while index + 8 <= count {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                bytes.storeBytes(of: word ^ pattern, toByteOffset: index, as: UInt64.self)
                index += 8
            }
            while index < count {
                bytes[index] ^= keyBytes[index % 4]
                index += 1
            }
        }
    }
}
