/// Reads the primitive fields written by `ByteWriter`. Every read checks the remaining
/// length first and throws `CRDTDecodingError` instead of trapping; `count(limit:)` checks a
/// declared element count against both a documented limit and the bytes left (each element
/// takes at least one byte), so a hostile count can never make a decoder allocate.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset: Int
    let end: Int

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
        self.end = bytes.count
    }

    /// A reader of `bytes[range]` only (it ends at `range.upperBound`).
    init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        self.offset = range.lowerBound
        self.end = range.upperBound
    }

    var remaining: Int { end - offset }
    var isAtEnd: Bool { offset >= end }

    mutating func byte() throws(CRDTDecodingError) -> UInt8 {
        guard offset < end else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// One-byte values (most counts, indices, deltas and flags) take the inlined fast path.
    @inline(__always)
    mutating func varint() throws(CRDTDecodingError) -> UInt64 {
        if offset < end, bytes[offset] < 0x80 {
            defer { offset += 1 }
            return UInt64(bytes[offset])
        }
        return try varintSlow()
    }

    private mutating func varintSlow() throws(CRDTDecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else { throw .truncated }
            let byte = bytes[offset]
            offset += 1
            if shift == 63 && byte > 1 { throw .varintOverflow }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw .varintOverflow }
        }
    }

    mutating func signedVarint() throws(CRDTDecodingError) -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    /// A varint that must fit `Int` and be at most `limit`.
    mutating func bounded(limit: Int, field: DecodingLimit) throws(CRDTDecodingError) -> Int {
        let raw = try varint()
        guard raw <= UInt64(limit) else { throw .limitExceeded(field) }
        return Int(raw)
    }

    /// An element count: at most `limit`, and at most the remaining bytes divided by the
    /// smallest encoded size of one element.
    mutating func count(limit: Int, field: DecodingLimit, minimumElementBytes: Int = 1) throws(CRDTDecodingError) -> Int
    {
        let raw = try varint()
        guard raw <= UInt64(limit) else { throw .limitExceeded(field) }
        guard raw <= UInt64(remaining / max(1, minimumElementBytes)) else { throw .countExceedsRemainingBytes }
        return Int(raw)
    }

    mutating func replicaID() throws(CRDTDecodingError) -> ReplicaID {
        guard remaining >= 16 else { throw .truncated }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<8 {
            high = high << 8 | UInt64(bytes[offset + index])
            low = low << 8 | UInt64(bytes[offset + 8 + index])
        }
        offset += 16
        return ReplicaID(high: high, low: low)
    }

    /// The range of the next `length` bytes, after checking they exist.
    mutating func take(_ length: Int) throws(CRDTDecodingError) -> Range<Int> {
        guard length >= 0, length <= remaining else { throw .countExceedsRemainingBytes }
        defer { offset += length }
        return offset..<(offset + length)
    }

    mutating func lengthPrefixedBytes(limit: Int) throws(CRDTDecodingError) -> [UInt8] {
        let length = try bounded(limit: limit, field: .bytesField)
        return Array(bytes[try take(length)])
    }

    /// A length-prefixed UTF-8 string, validated, with its Unicode scalar count.
    mutating func string() throws(CRDTDecodingError) -> (text: String, scalars: Int) {
        let length = try bounded(limit: DecodingLimits.textBytesMax, field: .textBytes)
        let range = try take(length)
        guard let scalars = UTF8Scalars.validatedCount(bytes, range) else { throw .invalidUTF8 }
        let text = bytes.withUnsafeBufferPointer { buffer in
            String(decoding: UnsafeBufferPointer(rebasing: buffer[range]), as: UTF8.self)
        }
        return (text, scalars)
    }

    mutating func timestamp() throws(CRDTDecodingError) -> HLCTimestamp {
        let millis = try varint()
        let logical = try varint()
        guard logical <= UInt64(UInt32.max) else { throw .varintOverflow }
        return HLCTimestamp(millis: millis, logical: UInt32(logical))
    }

    mutating func expectEnd() throws(CRDTDecodingError) {
        guard isAtEnd else { throw .trailingBytes }
    }
}

/// UTF-8 helpers. Text positions in CloakCRDT count Unicode scalars (as diamond-types and the
/// editing traces do): grapheme clusters are not stable under concatenation, so they cannot
/// name CRDT items, and UTF-16 offsets would tie the wire format to one platform's strings.
enum UTF8Scalars {
    /// The number of scalars in `bytes[range]` if it is valid UTF-8, else nil. ASCII words
    /// are checked eight bytes at a time, the common case for chat text.
    static func validatedCount(_ bytes: [UInt8], _ range: Range<Int>) -> Int? {
        bytes.withUnsafeBufferPointer { buffer in
            validatedCount(UnsafeBufferPointer(rebasing: buffer[range]))
        }
    }

    static func validatedCount(_ buffer: UnsafeBufferPointer<UInt8>) -> Int? {
        var index = 0
        var scalars = 0
        let count = buffer.count
        guard let base = buffer.baseAddress else { return 0 }
        let raw = UnsafeRawPointer(base)
        let highBits: UInt64 = 0x8080_8080_8080_8080
        while index < count {
            if index + 32 <= count {
                let word =
                    raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    | raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
                    | raw.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
                    | raw.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
                if word & highBits == 0 {
                    index += 32
                    scalars += 32
                    continue
                }
            }
            if index + 8 <= count, raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & highBits == 0 {
                index += 8
                scalars += 8
                continue
            }
            let lead = buffer[index]
            guard let width = sequenceWidth(lead: lead, buffer: buffer, at: index) else { return nil }
            index += width
            scalars += 1
        }
        return scalars
    }

    /// Width of the well-formed sequence starting at `index` (RFC 3629 table), or nil.
    private static func sequenceWidth(lead: UInt8, buffer: UnsafeBufferPointer<UInt8>, at index: Int) -> Int? {
        let count = buffer.count
        func continuation(_ offset: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
            index + offset < count && buffer[index + offset] >= low && buffer[index + offset] <= high
        }
        switch lead {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: return continuation(1) ? 2 : nil
        case 0xE0: return continuation(1, 0xA0) && continuation(2) ? 3 : nil
        case 0xE1...0xEC, 0xEE...0xEF: return continuation(1) && continuation(2) ? 3 : nil
        case 0xED: return continuation(1, 0x80, 0x9F) && continuation(2) ? 3 : nil
        case 0xF0: return continuation(1, 0x90) && continuation(2) && continuation(3) ? 4 : nil
        case 0xF1...0xF3: return continuation(1) && continuation(2) && continuation(3) ? 4 : nil
        case 0xF4: return continuation(1, 0x80, 0x8F) && continuation(2) && continuation(3) ? 4 : nil
        default: return nil
        }
    }

    /// The Unicode scalar count of a string: its UTF-8 bytes that are not continuation
    /// bytes (a Swift string is always valid UTF-8), counted without decoding scalars.
    static func count(of text: String) -> Int {
        if let count = text.utf8.withContiguousStorageIfAvailable({ $0.count - continuationCount($0) }) {
            return count
        }
        var scalars = 0
        for byte in text.utf8 where !isContinuation(byte) { scalars += 1 }
        return scalars
    }

    static func isContinuation(_ byte: UInt8) -> Bool { byte & 0xC0 == 0x80 }

    /// The number of continuation bytes (10xxxxxx) in `bytes[range]`, eight at a time: a
    /// byte is one when its top bit is set and the bit below is clear.
    static func continuationCount(_ bytes: [UInt8], _ range: Range<Int>) -> Int {
        bytes.withUnsafeBufferPointer { buffer in
            continuationCount(UnsafeBufferPointer(rebasing: buffer[range]))
        }
    }

    static func continuationCount(_ buffer: UnsafeBufferPointer<UInt8>) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        let raw = UnsafeRawPointer(base)
        let highBits: UInt64 = 0x8080_8080_8080_8080
        var count = 0
        var index = 0
        while index + 8 <= buffer.count {
            let word = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            count += (word & ~(word << 1) & highBits).nonzeroBitCount
            index += 8
        }
        while index < buffer.count {
            if isContinuation(buffer[index]) { count += 1 }
            index += 1
        }
        return count
    }

    /// Byte length of the first `scalars` scalars of valid UTF-8 starting at `start`.
    static func byteLength(_ bytes: [UInt8], from start: Int, scalars: Int) -> Int {
        var index = start
        var remaining = scalars
        while remaining > 0 && index < bytes.count {
            index += 1
            while index < bytes.count && bytes[index] & 0xC0 == 0x80 { index += 1 }
            remaining -= 1
        }
        return index - start
    }
}
