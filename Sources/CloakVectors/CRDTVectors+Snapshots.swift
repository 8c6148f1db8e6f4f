import CloakCRDT

/// `document_snapshot.json` and `state_hash.json`.
enum SnapshotVectors {
    static func cases() throws -> VectorJSON {
        let conversation = try conversationDocument()
        let library = try libraryDocument()
        return .array([
            try vector(
                "a conversation: an edited text with a tombstone, an empty reply, a deleted branch, reactions, "
                    + "registers, read markers and a held insert", document: "conversation",
                snapshot: conversation.snapshot(), hash: conversation.stateHash, decode: ConversationLayout.decode),
            try vector(
                "the account library of document_merge.json plus a held purge", document: "library",
                snapshot: library.snapshot(), hash: library.stateHash, decode: LibraryLayout.decode),
        ])
    }

    /// Decodes `snapshot` by the spec, checks that the hash of everything before the pending
    /// section is the document's state hash (§11) and that loading and writing it back gives the
    /// same bytes.
    static func vector(
        _ name: String, document: String, snapshot: [UInt8], hash: StateHash,
        decode: ([UInt8]) throws -> (state: VectorJSON, canonicalLength: Int)
    ) throws -> VectorJSON {
        let (state, canonicalLength) = try decode(snapshot)
        let canonical = Array(snapshot[0..<canonicalLength])
        guard StateHash(of: canonical) == hash else { throw VectorGenerationError("\(name): state hash input") }
        let reloaded =
            document == "conversation"
            ? try ConversationDocument(snapshot: snapshot).snapshot()
            : try AccountLibraryDocument(snapshot: snapshot).snapshot()
        guard reloaded == snapshot else { throw VectorGenerationError("\(name): does not reload byte for byte") }
        return .object([
            ("name", .string(name)), ("document", .string(document)), ("snapshot_hex", .hex(snapshot)),
            ("canonical_state_hex", .hex(canonical)), ("state", state), ("state_hash_hex", .hex(hash.bytes)),
        ])
    }

    /// A conversation with every part of the CKCS layout, as writer A sees it.
    static func conversationDocument() throws -> ConversationDocument {
        var s = MergeScenario("snapshot", devices: [("A", 1), ("B", 2)])
        let thumbs = Reaction(emoji: "👍", reactor: ProtocolVectors.material("crdt/account", 32))
        let a1 = try s.edit("A", at: 1) { d, r, t in
            [try d.createMessage(parent: nil, role: .user, text: "Hello world", replica: &r, physicalMillis: t)]
        }
        let prompt = MergeScenarios.first(s, a1)
        try s.deliver([a1], to: "B")
        let b1 = try s.edit("B", at: 2) { d, r, t in
            [
                try d.insertText("big ", into: prompt, at: 6, replica: &r, physicalMillis: t),
                try d.createMessage(parent: prompt, role: .assistant, text: "", replica: &r, physicalMillis: t),
            ]
        }
        let reply = MergeScenarios.first(s, b1, 1)
        try s.deliver([b1], to: "A")
        let a2 = try s.edit("A", at: 3) { d, r, t in
            var ops = [
                try d.deleteText(in: prompt, range: 10..<15, replica: &r, physicalMillis: t),
                try d.addReaction(thumbs, to: prompt, replica: &r, physicalMillis: t),
            ]
            ops += try d.branch(from: reply, role: .assistant, text: "Hi!", replica: &r, physicalMillis: t)
            ops.append(try d.setTitle("Greetings", replica: &r, physicalMillis: t))
            ops.append(try d.setMetadata(.custom("k"), to: .bytes([1, 2, 3]), replica: &r, physicalMillis: t))
            ops.append(try d.markRead(upTo: d.message(prompt)?.created ?? .zero, replica: &r, physicalMillis: t))
            return ops
        }
        let regenerated = MergeScenarios.first(s, a2, 2)
        try s.deliver([a2], to: "B")
        let b2 = try s.edit("B", at: 4) { d, r, t in
            [
                try d.deleteMessage(regenerated, replica: &r, physicalMillis: t),
                try d.markRead(upTo: d.message(reply)?.created ?? .zero, replica: &r, physicalMillis: t),
            ]
        }
        try s.deliver([b2], to: "A")
        guard var document = s.writers["A"]?.conversation else { throw VectorGenerationError("writer A") }
        // An insert by C into a message of C's that never arrived: held in the pending section.
        let c = CRDTVectors.replica(3)
        let held = CRDTOperation(
            id: OperationID(replica: c, counter: 7),
            timestamp: HLCTimestamp(millis: CRDTVectors.baseMillis + 5_000, logical: 0),
            payload: .insertText(message: OperationID(replica: c, counter: 0), after: nil, before: nil, text: "later"))
        _ = document.apply([held], physicalMillis: s.nowMillis)
        return document
    }

    /// The library of the merge vector, plus a purge that waits for an add it observed.
    static func libraryDocument() throws -> AccountLibraryDocument {
        var s = try MergeScenarios.library()
        try s.deliver(Array(s.batches.indices), to: "A")
        guard var library = s.writers["A"]?.library else { throw VectorGenerationError("writer A") }
        let c = CRDTVectors.replica(3)
        let purge = CRDTOperation(
            id: OperationID(replica: c, counter: 3),
            timestamp: HLCTimestamp(millis: CRDTVectors.baseMillis + 6_000, logical: 0),
            payload: .removeConversation(try MergeScenarios.key(0xA3), observed: [OperationID(replica: c, counter: 1)]))
        _ = library.apply([purge], physicalMillis: s.nowMillis)
        return library
    }

    /// `state_hash.json`: SipHash-2-4 twice, big-endian words, over raw inputs.
    static func hashCases() throws -> VectorJSON {
        let inputs: [(String, [UInt8])] = [
            ("empty", []), ("one byte", [0]), ("seven bytes", Array(1...7)), ("eight bytes", Array(1...8)),
            ("fifteen bytes", Array(0...14)),
            ("sixty-four bytes of material", ProtocolVectors.material("crdt/hash", 64)),
            ("an empty conversation's canonical state", Array("CKCS".utf8) + [2, 0, 0, 0, 0, 0, 0, 0]),
            ("an empty library's canonical state", Array("CKAL".utf8) + [1, 0, 0, 0, 0, 0, 0]),
        ]
        guard StateHash(of: inputs[6].1) == ConversationDocument().stateHash,
            StateHash(of: inputs[7].1) == AccountLibraryDocument().stateHash
        else { throw VectorGenerationError("the empty canonical states are not what §9 and §10 say") }
        return .array(
            inputs.map { name, input in
                .object([
                    ("name", .string(name)), ("input_hex", .hex(input)),
                    ("state_hash_hex", .hex(StateHash(of: input).bytes)),
                ])
            })
    }
}
