import CloakCRDT
import CloakTesting
import Testing

@Suite("Binary encodings")
struct EncodingTests {
    /// One operation of every conversation kind, plus library kinds, from two writers.
    static func sampleOperations() throws -> [CRDTOperation] {
        var a = Device(1)
        var b = Device(2)
        var ops: [CRDTOperation] = []
        let root = try a.doc.createMessage(
            parent: nil, role: .system, text: "Be brief ✓", replica: &a.replica, physicalMillis: 10)
        ops.append(root)
        let reply = try a.doc.createMessage(
            parent: root.id, role: .tool, text: "", replica: &a.replica, physicalMillis: 11)
        ops.append(reply)
        ops.append(try a.doc.appendText("42 😀", to: reply.id, replica: &a.replica, physicalMillis: 12))
        ops.append(try a.doc.insertText("x", into: root.id, at: 3, replica: &a.replica, physicalMillis: 13))
        ops.append(try a.doc.deleteText(in: root.id, range: 1..<5, replica: &a.replica, physicalMillis: 14))
        ops.append(
            contentsOf: try a.doc.branch(
                from: reply.id, role: .assistant, text: "B", replica: &a.replica, physicalMillis: 15))
        let thumbs = Reaction(emoji: "👍", reactor: [1, 2, 3])
        ops.append(try a.doc.addReaction(thumbs, to: root.id, replica: &a.replica, physicalMillis: 16))
        ops.append(try a.doc.removeReaction(thumbs, from: root.id, replica: &a.replica, physicalMillis: 17))
        ops.append(try a.doc.setTitle("T", replica: &a.replica, physicalMillis: 18))
        ops.append(try a.doc.setMetadata(.custom("k"), to: .bytes([9, 9]), replica: &a.replica, physicalMillis: 19))
        ops.append(try a.doc.setMetadata(.pinned, to: .flag(false), replica: &a.replica, physicalMillis: 19))
        ops.append(
            try a.doc.markRead(upTo: HLCTimestamp(millis: 5, logical: 2), replica: &a.replica, physicalMillis: 20))
        ops.append(try a.doc.deleteMessage(reply.id, replica: &a.replica, physicalMillis: 21))
        var library = AccountLibraryDocument()
        let key = try #require(ConversationKey(bytes: [UInt8](repeating: 3, count: 16)))
        ops.append(try library.addConversation(key, replica: &b.replica, physicalMillis: 30))
        ops.append(contentsOf: try library.setState(.active, of: key, replica: &b.replica, physicalMillis: 31))
        let folder = try library.createFolder(name: "Work", replica: &b.replica, physicalMillis: 32)
        ops.append(folder)
        ops.append(try library.renameFolder(folder.id, to: "Job", replica: &b.replica, physicalMillis: 33))
        ops.append(try library.deleteFolder(folder.id, replica: &b.replica, physicalMillis: 34))
        ops.append(try library.setSetting("theme", to: .text("dark"), replica: &b.replica, physicalMillis: 35))
        ops.append(try library.purgeConversation(key, replica: &b.replica, physicalMillis: 36))
        return ops
    }

    @Test("every operation kind round-trips exactly without coalescing")
    func batchRoundTrip() throws {
        let ops = try Self.sampleOperations()
        #expect(try OperationBatch.decode(OperationBatch.encode(ops, coalescing: false)) == ops)
        #expect(try OperationBatch.decode(OperationBatch.encode([])) == [])
    }

    @Test("coalescing merges typing and streaming runs and never changes the resulting state")
    func coalescing() throws {
        var a = Device(1)
        let message = try a.doc.createMessage(
            parent: nil, role: .assistant, text: "", replica: &a.replica, physicalMillis: 1)
        var ops = [message]
        for character in "streamed reply" {
            ops.append(try a.doc.appendText(String(character), to: message.id, replica: &a.replica, physicalMillis: 2))
        }
        for _ in 0..<4 {
            let length = try #require(a.doc.textLength(of: message.id))
            ops.append(
                try a.doc.deleteText(
                    in: message.id, range: (length - 1)..<length, replica: &a.replica, physicalMillis: 3))
        }
        let coalesced = OperationBatch.coalesce(ops)
        #expect(coalesced.count == 2)
        var replayed = ConversationDocument()
        _ = replayed.apply(try OperationBatch.decode(OperationBatch.encode(ops)), physicalMillis: 4)
        #expect(replayed.stateHash == a.doc.stateHash)
        #expect(replayed.text(of: message.id) == "streamed r")
    }

    @Test("ADV-17: every truncation of a batch throws")
    func truncatedBatches() throws {
        let bytes = OperationBatch.encode(try Self.sampleOperations(), coalescing: false)
        for length in 0..<bytes.count {
            #expect(throws: CRDTDecodingError.self) { try OperationBatch.decode(Array(bytes.prefix(length))) }
        }
        #expect(throws: CRDTDecodingError.trailingBytes) { try OperationBatch.decode(bytes + [0]) }
    }

    @Test("ADV-17: huge declared counts are refused before allocating")
    func hugeCounts() {
        let header: [UInt8] = Array("CKOB".utf8) + [1]
        let hugeVarint: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
        #expect(throws: CRDTDecodingError.limitExceeded(.replicasPerEncoding)) {
            try OperationBatch.decode(header + hugeVarint)
        }
        #expect(throws: CRDTDecodingError.countExceedsRemainingBytes) {
            try OperationBatch.decode(header + [0, 0xE8, 0x07])  // 1,000 ops in 0 bytes
        }
        #expect(throws: CRDTDecodingError.varintOverflow) {
            try OperationBatch.decode(header + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        }
        #expect(throws: CRDTDecodingError.unsupportedVersion(9)) { try OperationBatch.decode(Array("CKOB".utf8) + [9]) }
    }

    @Test(
        "ADV-17: seeded random and mutated bytes never crash the decoders or the documents",
        arguments: [1, 2, 3] as [UInt64])
    func fuzz(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let valid = OperationBatch.encode(try Self.sampleOperations(), coalescing: false)
        var doc = ConversationDocument()
        var library = AccountLibraryDocument()
        for round in 0..<1_500 {
            var bytes = round % 3 == 0 ? rng.bytes(Int.random(in: 0..<200, using: &rng)) : valid
            if round % 3 != 0 {
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            if let ops = try? OperationBatch.decode(bytes) {
                _ = doc.apply(ops, physicalMillis: 1_000)
                _ = library.apply(ops, physicalMillis: 1_000)
            }
        }
        _ = try ConversationDocument(snapshot: doc.snapshot())
        _ = try AccountLibraryDocument(snapshot: library.snapshot())
    }

    @Test("ADV-17: snapshot truncations and mutations throw or load, never crash")
    func snapshotMalformed() throws {
        var workload = RandomWorkload(devices: 2, seed: 77)
        try workload.run(steps: 60)
        let snapshot = workload.devices[0].doc.snapshot()
        for length in stride(from: 0, to: snapshot.count, by: max(1, snapshot.count / 400)) {
            #expect(throws: CRDTDecodingError.self) {
                try ConversationDocument(snapshot: Array(snapshot.prefix(length)))
            }
        }
        var rng = SeededRandom(seed: 78)
        for _ in 0..<600 {
            var bytes = snapshot
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8(truncatingIfNeeded: rng.next())
            if var loaded = try? ConversationDocument(snapshot: bytes) {
                _ = loaded.activeBranch()
                _ = loaded.stateHash
                _ = loaded.apply(workload.allOperations, physicalMillis: 1)
            }
        }
        #expect(throws: CRDTDecodingError.badMagic) { try ConversationDocument(snapshot: Array("CKOB".utf8) + [1]) }
    }
}
