/// Encodes `Frame{deliver}` directly from stored bytes. Deliveries are the server's hot path
/// (catch-up and fanout carry every change set); building `Cloak_V1_StoredChangeSet` messages
/// would copy each stored change set twice more. The output is ordinary protobuf, field for
/// field what SwiftProtobuf writes (pinned by `DeliverEncoderTests`).
///
/// ```swift
/// let frame = DeliverEncoder.encode(requestID: 0, items: page, caughtUp: true)
/// ```
public enum DeliverEncoder {
    /// The encoded frame.
    public static func encode(requestID: UInt64, items: [StoredChangeSet], caughtUp: Bool) -> [UInt8] {
        var deliverLength = caughtUp ? 2 : 0
        for item in items {
            let inner = itemLength(item)
            deliverLength += 1 + varintSize(UInt64(inner)) + inner
        }
        var out: [UInt8] = []
        out.reserveCapacity(deliverLength + 24)
        if requestID != 0 {
            out.append(0x08)
            appendVarint(requestID, to: &out)
        }
        out.append(0x72)  // field 14 (deliver), length-delimited
        appendVarint(UInt64(deliverLength), to: &out)
        for item in items {
            out.append(0x0A)  // Deliver.items
            appendVarint(UInt64(itemLength(item)), to: &out)
            if item.cursor != 0 {
                out.append(0x08)
                appendVarint(item.cursor, to: &out)
            }
            if !item.bytes.isEmpty {
                out.append(0x12)
                appendVarint(UInt64(item.bytes.count), to: &out)
                out.append(contentsOf: item.bytes)
            }
        }
        if caughtUp { out += [0x10, 0x01] }
        return out
    }

    /// Upper bound of the encoded size of one item inside a Deliver frame.
    static func encodedSize(of item: StoredChangeSet) -> Int {
        let inner = itemLength(item)
        return 1 + varintSize(UInt64(inner)) + inner
    }

    private static func itemLength(_ item: StoredChangeSet) -> Int {
        var length = 0
        if item.cursor != 0 { length += 1 + varintSize(item.cursor) }
        if !item.bytes.isEmpty { length += 1 + varintSize(UInt64(item.bytes.count)) + item.bytes.count }
        return length
    }

    static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var v = value >> 7
        while v != 0 {
            size += 1
            v >>= 7
        }
        return size
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
