import CloakCRDT

/// Reads the primitives of CONVERSATIONS.md §1, written from the document rather than from
/// CloakCRDT's decoders: the snapshot vectors are decoded with it, so a layout that the code
/// writes differently from the spec fails the generator.
struct SpecReader {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { offset == bytes.count }

    mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw VectorGenerationError("truncated at \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<10 {
            let next = try byte()
            value |= UInt64(next & 0x7F) << UInt64(7 * index)
            if next < 0x80 { return value }
        }
        throw VectorGenerationError("varint over 10 bytes")
    }

    mutating func int() throws -> Int { Int(try varint()) }

    mutating func zigzag() throws -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    mutating func raw(_ count: Int) throws -> [UInt8] {
        guard count >= 0, count <= bytes.count - offset else { throw VectorGenerationError("short field") }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func string() throws -> String {
        let utf8 = try raw(try int())
        guard let text = String(validating: utf8, as: UTF8.self) else { throw VectorGenerationError("not UTF-8") }
        return text
    }

    mutating func lengthPrefixed() throws -> [UInt8] { try raw(try int()) }

    mutating func timestamp() throws -> VectorJSON {
        .object([("millis", .int(try varint())), ("logical", .int(try varint()))])
    }

    /// `field` of §5.3.
    mutating func field() throws -> VectorJSON {
        let names = ["title", "pinned", "archived", "model", "folder"]
        let tag = Int(try byte())
        if tag < names.count { return .object([("name", .string(names[tag]))]) }
        guard tag == 5 else { throw VectorGenerationError("field \(tag)") }
        return .object([("name", .string("custom")), ("key", .string(try string()))])
    }

    /// `value` of §5.3.
    mutating func value() throws -> VectorJSON {
        switch try byte() {
        case 0: .object([("type", .string("unset"))])
        case 1: .object([("type", .string("text")), ("text", .string(try string()))])
        case 2: .object([("type", .string("flag")), ("flag", .bool(false))])
        case 3: .object([("type", .string("flag")), ("flag", .bool(true))])
        case 4: .object([("type", .string("bytes")), ("bytes_hex", .hex(try lengthPrefixed()))])
        case let tag: throw VectorGenerationError("value \(tag)")
        }
    }

    /// Consumed counters: `intervals × (gap ‖ length)`, as `{start, length}` objects.
    mutating func intervals() throws -> VectorJSON {
        var previous: UInt64 = 0
        var out: [VectorJSON] = []
        for _ in 0..<(try int()) {
            let start = previous + (try varint())
            let length = try varint()
            out.append(.object([("start", .int(start)), ("length", .int(length))]))
            previous = start + length
        }
        return .array(out)
    }

    /// The trailing `pending` section: the batch and its operations.
    mutating func pending() throws -> VectorJSON {
        let batch = try lengthPrefixed()
        let ops = try OperationBatch.decode(batch)
        return .object([("batch_hex", .hex(batch)), ("operations", .array(ops.map(CRDTJSON.operation)))])
    }
}
