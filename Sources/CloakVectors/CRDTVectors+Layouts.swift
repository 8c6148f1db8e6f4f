/// CKCS (CONVERSATIONS.md §9.1) decoded section by section into JSON, by `SpecReader`.
enum ConversationLayout {
    static func decode(_ bytes: [UInt8]) throws -> (state: VectorJSON, canonicalLength: Int) {
        var r = SpecReader(bytes)
        guard try r.raw(5) == Array("CKCS".utf8) + [2] else { throw VectorGenerationError("CKCS magic/version") }
        var table: [[UInt8]] = []
        for _ in 0..<(try r.int()) { table.append(try r.raw(16)) }
        func index(_ raw: Int) throws -> [UInt8] {
            guard raw < table.count else { throw VectorGenerationError("replica index \(raw)") }
            return table[raw]
        }
        func id(_ replica: Int, _ counter: UInt64) throws -> VectorJSON {
            .object([("replica_hex", .hex(try index(replica))), ("counter", .int(counter))])
        }
        func ref(_ r: inout SpecReader) throws -> VectorJSON {
            let tag = try r.int()
            return tag == 0 ? .null : try id(tag - 1, try r.varint())
        }
        var consumed: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            let replica = try index(try r.int())
            consumed.append(.object([("replica_hex", .hex(replica)), ("intervals", try r.intervals())]))
        }
        let content = try r.lengthPrefixed()
        guard let text = String(validating: content, as: UTF8.self) else { throw VectorGenerationError("content") }
        var contentUsed = 0
        var messages: [VectorJSON] = []
        var ids: [VectorJSON] = []
        var millis: UInt64 = 0
        let roles = ["user", "assistant", "system", "tool"]
        for record in 0..<(try r.int()) {
            let flags = try r.byte()
            let messageID = try id(try r.int(), try r.varint())
            let distance = try r.int()
            guard distance <= record else { throw VectorGenerationError("parent distance") }
            millis = UInt64(bitPattern: Int64(bitPattern: millis) &+ (try r.zigzag()))
            var fields: [(String, VectorJSON)] = [
                ("record", .int(UInt64(record))), ("id", messageID),
                ("parent_distance", .int(UInt64(distance))), ("parent", distance == 0 ? .null : ids[record - distance]),
                ("role", .string(roles[Int(flags & 3)])), ("deleted", .bool(flags & 4 != 0)),
                ("created", .object([("millis", .int(millis)), ("logical", .int(try r.varint()))])),
            ]
            ids.append(messageID)
            switch flags >> 4 & 3 {
            case 0:
                fields.append(("shape", .string("empty")))
            case 1:
                let length = try r.varint()
                let byteCount = length + (try r.varint())
                contentUsed += Int(byteCount)
                fields += [("shape", .string("plain")), ("length", .int(length)), ("byte_count", .int(byteCount))]
            case 2:
                var runs: [VectorJSON] = []
                for _ in 0..<(try r.int()) {
                    let runID = try id(try r.int(), try r.varint())
                    let left = try ref(&r)
                    let right = try ref(&r)
                    let length = try r.varint()
                    let state = try r.varint()
                    let byteCount = state == 0 ? 0 : state - 1 + length
                    contentUsed += Int(byteCount)
                    runs.append(
                        .object([
                            ("id", runID), ("left", left), ("right", right), ("length", .int(length)),
                            ("deleted", .bool(state == 0)), ("byte_count", .int(byteCount)),
                        ]))
                }
                fields += [("shape", .string("runs")), ("runs", .array(runs))]
            default:
                throw VectorGenerationError("text shape 3")
            }
            if flags & 8 != 0 { fields.append(("reactions", try reactions(&r, id: id))) }
            messages.append(.object(fields))
        }
        guard contentUsed == content.count else { throw VectorGenerationError("content not used exactly") }
        var branches: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            let parent = try ref(&r)
            let child = try ref(&r)
            let time = try r.timestamp()
            branches.append(
                .object([
                    ("parent", parent), ("child", child), ("timestamp", time),
                    ("writer", try id(try r.int(), try r.varint())),
                ]))
        }
        var metadata: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            let field = try r.field()
            let value = try r.value()
            let time = try r.timestamp()
            metadata.append(
                .object([
                    ("field", field), ("value", value), ("timestamp", time),
                    ("writer", try id(try r.int(), try r.varint())),
                ]))
        }
        var markers: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            markers.append(.object([("device_hex", .hex(try r.raw(16))), ("timestamp", try r.timestamp())]))
        }
        let canonicalLength = r.offset
        let pending = try r.pending()
        guard r.isAtEnd else { throw VectorGenerationError("trailing bytes") }
        let state = VectorJSON.object([
            ("replicas", .array(table.map(VectorJSON.hex))), ("consumed", .array(consumed)), ("content", .string(text)),
            ("messages", .array(messages)), ("branches", .array(branches)), ("metadata", .array(metadata)),
            ("markers", .array(markers)), ("pending", pending),
        ])
        return (state, canonicalLength)
    }

    static func reactions(_ r: inout SpecReader, id: (Int, UInt64) throws -> VectorJSON) throws -> VectorJSON {
        var out: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            let emoji = try r.string()
            let reactor = try r.lengthPrefixed()
            var tags: [VectorJSON] = []
            for _ in 0..<(try r.int()) { tags.append(try id(try r.int(), try r.varint())) }
            out.append(.object([("emoji", .string(emoji)), ("reactor_hex", .hex(reactor)), ("tags", .array(tags))]))
        }
        return .array(out)
    }
}

/// CKAL (CONVERSATIONS.md §10) decoded section by section into JSON, by `SpecReader`.
enum LibraryLayout {
    static func decode(_ bytes: [UInt8]) throws -> (state: VectorJSON, canonicalLength: Int) {
        var r = SpecReader(bytes)
        guard try r.raw(5) == Array("CKAL".utf8) + [1] else { throw VectorGenerationError("CKAL magic/version") }
        func id(_ r: inout SpecReader) throws -> VectorJSON {
            .object([("replica_hex", .hex(try r.raw(16))), ("counter", .int(try r.varint()))])
        }
        func stamp(_ r: inout SpecReader) throws -> [(String, VectorJSON)] {
            let time = try r.timestamp()
            return [("timestamp", time), ("writer", try id(&r))]
        }
        func tags(_ r: inout SpecReader) throws -> VectorJSON {
            var out: [VectorJSON] = []
            for _ in 0..<(try r.int()) { out.append(try id(&r)) }
            return .array(out)
        }
        var consumed: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            consumed.append(.object([("replica_hex", .hex(try r.raw(16))), ("intervals", try r.intervals())]))
        }
        var conversations: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            conversations.append(.object([("key_hex", .hex(try r.raw(16))), ("tags", try tags(&r))]))
        }
        let stateNames = ["active", "archived", "trashed"]
        var states: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            let key = try r.raw(16)
            let state = Int(try r.byte())
            guard state < stateNames.count else { throw VectorGenerationError("state \(state)") }
            states.append(.object([("key_hex", .hex(key)), ("state", .string(stateNames[state]))] + (try stamp(&r))))
        }
        var folders: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            let folder = try id(&r)
            folders.append(.object([("id", folder), ("tags", try tags(&r))]))
        }
        var names: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            let folder = try id(&r)
            let name = try r.string()
            names.append(.object([("id", folder), ("name", .string(name))] + (try stamp(&r))))
        }
        var settings: [VectorJSON] = []
        for _ in 0..<(try r.int()) {
            let key = try r.string()
            let value = try r.value()
            settings.append(.object([("key", .string(key)), ("value", value)] + (try stamp(&r))))
        }
        let canonicalLength = r.offset
        let pending = try r.pending()
        guard r.isAtEnd else { throw VectorGenerationError("trailing bytes") }
        let state = VectorJSON.object([
            ("consumed", .array(consumed)), ("conversations", .array(conversations)), ("states", .array(states)),
            ("folders", .array(folders)), ("folder_names", .array(names)), ("settings", .array(settings)),
            ("pending", pending),
        ])
        return (state, canonicalLength)
    }
}
