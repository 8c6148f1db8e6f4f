import CloakCRDT
@_spi(Randomness) import CloakTesting
import Testing

@Suite("Message text (Fugue sequence)")
struct TextSequenceTests {
    @Test("insert and delete by Unicode scalar positions, with multi-byte text")
    func unicodePositions() throws {
        var device = Device(1)
        let message = try device.doc.createMessage(
            parent: nil, role: .user, text: "héllo", replica: &device.replica, physicalMillis: device.now)
        _ = try device.doc.insertText(
            "👍🏽", into: message.id, at: 2, replica: &device.replica, physicalMillis: device.now)
        #expect(device.doc.text(of: message.id) == "hé👍🏽llo")
        #expect(device.doc.textLength(of: message.id) == 7)
        _ = try device.doc.deleteText(
            in: message.id, range: 1..<3, replica: &device.replica, physicalMillis: device.now)
        #expect(device.doc.text(of: message.id) == "h🏽llo")
        #expect(throws: ConversationEditError.positionOutOfRange) {
            try device.doc.insertText(
                "x", into: message.id, at: 99, replica: &device.replica, physicalMillis: device.now)
        }
    }

    @Test("random local edits match a plain string model, past the single-leaf size", arguments: [1, 2, 3] as [UInt64])
    func matchesModel(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var device = Device(1)
        let message = try device.doc.createMessage(
            parent: nil, role: .user, text: "", replica: &device.replica, physicalMillis: device.now)
        var model: [Unicode.Scalar] = []
        let alphabet = Array("abcdé中👍 ".unicodeScalars)
        for _ in 0..<1_500 {
            if model.isEmpty || Int.random(in: 0..<3, using: &rng) > 0 {
                let position = Int.random(in: 0...model.count, using: &rng)
                let inserted = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
                    alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
                }
                var text = String.UnicodeScalarView()
                text.append(contentsOf: inserted)
                _ = try device.doc.insertText(
                    String(text), into: message.id, at: position, replica: &device.replica, physicalMillis: device.now)
                model.insert(contentsOf: inserted, at: position)
            } else {
                let start = Int.random(in: 0..<model.count, using: &rng)
                let end = min(model.count, start + Int.random(in: 1...5, using: &rng))
                _ = try device.doc.deleteText(
                    in: message.id, range: start..<end, replica: &device.replica, physicalMillis: device.now)
                model.removeSubrange(start..<end)
            }
        }
        var expected = String.UnicodeScalarView()
        expected.append(contentsOf: model)
        #expect(device.doc.text(of: message.id) == String(expected))
        #expect(device.doc.textRunCount > 64)
    }

    @Test(
        "ADV-07: typing with backspaces and forward deletes on two synced devices matches models and converges",
        arguments: [4, 5] as [UInt64])
    func typingSessionsConverge(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var a = Device(1)
        var b = Device(2)
        let message = try a.doc.createMessage(
            parent: nil, role: .user, text: "", replica: &a.replica, physicalMillis: a.now)
        _ = b.doc.apply([message], physicalMillis: b.now)
        var all = [message]
        for _ in 0..<30 {
            let fromA = try Self.typingSessions(on: &a, in: message.id, rng: &rng)
            let fromB = try Self.typingSessions(on: &b, in: message.id, rng: &rng)
            _ = a.doc.apply(fromB, physicalMillis: a.now)
            _ = b.doc.apply(fromA.reversed(), physicalMillis: b.now)
            #expect(a.doc.stateHash == b.doc.stateHash)
            #expect(a.doc.text(of: message.id) == b.doc.text(of: message.id))
            all += fromA + fromB
        }
        #expect(a.doc.textRunCount > 2 * 64)
        var fresh = ConversationDocument()
        var shuffle = SeededRandom(seed: seed &* 7)
        let report = fresh.apply(all.shuffled(seed: &shuffle), physicalMillis: a.now)
        #expect(report.rejected.isEmpty && fresh.pendingCount == 0)
        #expect(fresh.stateHash == a.doc.stateHash)
        var coalesced = ConversationDocument()
        _ = coalesced.apply(try OperationBatch.decode(OperationBatch.encode(all)), physicalMillis: a.now)
        #expect(coalesced.stateHash == a.doc.stateHash)
        let loaded = try ConversationDocument(snapshot: b.doc.snapshot())
        #expect(loaded.stateHash == a.doc.stateHash)
        #expect(loaded.snapshot() == b.doc.snapshot())
    }

    /// Six editing sessions on one device: put the cursor somewhere, type one character at a
    /// time, then backspace or delete forward one at a time; checks the text against a plain
    /// model and returns the operations.
    static func typingSessions(
        on device: inout Device, in message: MessageID, rng: inout SeededRandom
    ) throws -> [CRDTOperation] {
        let alphabet = Array("abcdé中👍 ".unicodeScalars)
        var model = Array((device.doc.text(of: message) ?? "").unicodeScalars)
        var ops: [CRDTOperation] = []
        for _ in 0..<6 {
            var cursor = Int.random(in: 0...model.count, using: &rng)
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                let scalar = alphabet[Int.random(in: 0..<alphabet.count, using: &rng)]
                let now = device.tick()
                ops.append(
                    try device.doc.insertText(
                        String(Character(scalar)), into: message, at: cursor, replica: &device.replica,
                        physicalMillis: now))
                model.insert(scalar, at: cursor)
                cursor += 1
            }
            let forward = Bool.random(using: &rng)
            for _ in 0..<Int.random(in: 0...8, using: &rng) {
                let position = forward ? cursor : cursor - 1
                guard position >= 0, position < model.count else { break }
                let now = device.tick()
                ops.append(
                    try device.doc.deleteText(
                        in: message, range: position..<(position + 1), replica: &device.replica, physicalMillis: now))
                model.remove(at: position)
                if !forward { cursor -= 1 }
            }
        }
        var expected = String.UnicodeScalarView()
        expected.append(contentsOf: model)
        #expect(device.doc.text(of: message) == String(expected))
        return ops
    }

    @Test("concurrent typing at one position never interleaves (Fugue)", arguments: [0, 3, 6] as [Int])
    func noInterleaving(position: Int) throws {
        var a = Device(1)
        var b = Device(2)
        let base = try a.doc.createMessage(
            parent: nil, role: .user, text: "abcdef", replica: &a.replica, physicalMillis: a.now)
        _ = b.doc.apply([base], physicalMillis: b.now)
        var fromA: [CRDTOperation] = []
        var fromB: [CRDTOperation] = []
        for (offset, character) in "hello".enumerated() {
            fromA.append(
                try a.doc.insertText(
                    String(character), into: base.id, at: position + offset, replica: &a.replica, physicalMillis: a.now)
            )
        }
        for (offset, character) in "world".enumerated() {
            fromB.append(
                try b.doc.insertText(
                    String(character), into: base.id, at: position + offset, replica: &b.replica, physicalMillis: b.now)
            )
        }
        _ = a.doc.apply(fromB, physicalMillis: a.now)
        _ = b.doc.apply(fromA.reversed(), physicalMillis: b.now)
        let text = try #require(a.doc.text(of: base.id))
        #expect(text == b.doc.text(of: base.id))
        let prefix = String("abcdef".prefix(position))
        let suffix = String("abcdef".dropFirst(position))
        #expect([prefix + "helloworld" + suffix, prefix + "worldhello" + suffix].contains(text))
    }

    @Test("a streamed reply of many appends stays one run, locally and after merging")
    func streamingIsOneRun() throws {
        var device = Device(1)
        let reply = try device.doc.createMessage(
            parent: nil, role: .assistant, text: "", replica: &device.replica, physicalMillis: device.now)
        var ops = [reply]
        for index in 0..<500 {
            ops.append(
                try device.doc.appendText(
                    "chunk\(index) ", to: reply.id, replica: &device.replica, physicalMillis: device.tick()))
        }
        #expect(device.doc.textRunCount == 1)
        var other = ConversationDocument()
        _ = other.apply(ops, physicalMillis: device.now)
        #expect(other.textRunCount == 1)
        #expect(OperationBatch.coalesce(ops).count == 1)
        #expect(other.text(of: reply.id) == device.doc.text(of: reply.id))
    }
}
