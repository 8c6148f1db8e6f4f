import CloakCRDT
import CloakCrypto

/// `operation_batch.json`: every operation kind encoded and decoded by name, a coalesced
/// typing run, a batch of two authors, and malformed batches with the check that refuses them.
enum BatchVectors {
    static let r1 = CRDTVectors.replica(1)
    static let r2 = CRDTVectors.replica(2)
    static let time = CRDTVectors.baseMillis

    static func id(_ replica: ReplicaID, _ counter: UInt64) -> OperationID {
        OperationID(replica: replica, counter: counter)
    }

    static func op(
        _ replica: ReplicaID, _ counter: UInt64, at offset: UInt64, _ payload: OperationPayload
    )
        -> CRDTOperation
    {
        CRDTOperation(
            id: id(replica, counter), timestamp: HLCTimestamp(millis: time + offset, logical: 0), payload: payload)
    }

    static func cases() throws -> VectorJSON {
        let message = id(r1, 5)
        let reactor = ProtocolVectors.material("crdt/reactor-account", 32)
        guard let key = ConversationKey(bytes: [UInt8](repeating: 0xC0, count: 16)) else {
            throw VectorGenerationError("conversation key")
        }
        let folder = id(r1, 22)
        let deletions = [
            op(r1, 9, at: 40, .deleteText(message: message, spans: [IDSpan(start: id(r1, 6), count: 1)])),
            op(r1, 10, at: 41, .deleteText(message: message, spans: [IDSpan(start: id(r2, 1), count: 2)])),
        ]
        var valid: [(String, [CRDTOperation], Bool)] = [
            (
                "createMessage: a root message by R1 (CONVERSATIONS.md §5.5)",
                [op(r1, 5, at: 0, .createMessage(parent: nil, role: .user, text: "Hi"))], false
            ),
            (
                "createMessage: R2's empty reply under R1's message (a streamed reply starts)",
                [op(r2, 0, at: 10, .createMessage(parent: message, role: .assistant, text: ""))], false
            ),
            (
                "insertText: R2 types between two of R1's characters (non-ASCII: 2 scalars, 6 bytes)",
                [op(r2, 1, at: 20, .insertText(message: message, after: id(r1, 6), before: id(r1, 7), text: "é👍"))],
                false
            ),
            (
                "insertText: R1 appends to its own message (references as deltas from the operation's counter)",
                [op(r1, 8, at: 30, .insertText(message: message, after: id(r1, 7), before: nil, text: "!"))], false
            ),
            ("deleteText: two deletions coalesced into one operation of 2 counters", deletions, true),
            ("deleteMessage", [op(r2, 3, at: 50, .deleteMessage(id(r2, 0)))], false),
            (
                "selectBranch: at the root, then under a message",
                [
                    op(r1, 11, at: 60, .selectBranch(parent: nil, child: message)),
                    op(r2, 4, at: 61, .selectBranch(parent: message, child: id(r2, 0))),
                ], false
            ),
            ("setMetadata: every field and value kind", metadataOperations(), false),
            (
                "addReaction",
                [
                    op(r2, 10, at: 80, .addReaction(message: message, reaction: Reaction(emoji: "👍", reactor: reactor)))
                ], false
            ),
            (
                "removeReaction: the two adds R1 had seen",
                [
                    op(
                        r1, 12, at: 90,
                        .removeReaction(
                            message: message, reaction: Reaction(emoji: "👍", reactor: reactor),
                            observed: [id(r2, 10), id(r1, 4)]))
                ], false
            ),
            ("markRead", [op(r2, 11, at: 100, .markRead(upTo: HLCTimestamp(millis: time + 10, logical: 2)))], false),
            ("addConversation (library)", [op(r1, 20, at: 200, .addConversation(key))], false),
            (
                "removeConversation (library): purge of the add R2 had seen",
                [op(r2, 20, at: 210, .removeConversation(key, observed: [id(r1, 20)]))], false
            ),
            ("setConversationState (library)", [op(r1, 21, at: 220, .setConversationState(key, .trashed))], false),
            ("createFolder (library)", [op(r1, 22, at: 230, .createFolder(name: "Work"))], false),
            ("renameFolder (library)", [op(r2, 21, at: 240, .renameFolder(folder, name: "Work stuff"))], false),
            ("removeFolder (library)", [op(r1, 23, at: 250, .removeFolder(folder, observed: [folder]))], false),
            ("setSetting (library)", [op(r2, 22, at: 260, .setSetting(key: "theme", value: .text("dark")))], false),
        ]
        valid.append(
            ("a typing run: a message and five keystrokes coalesced into one createMessage", typingRun(), true))
        valid.append(
            (
                "two authors in one batch (a snapshot's held operations): deltas go negative",
                [
                    op(r2, 40, at: 500, .insertText(message: message, after: nil, before: id(r1, 6), text: "¡")),
                    op(r1, 30, at: 300, .createMessage(parent: message, role: .tool, text: "{}")),
                ], false
            ))
        var cases: [VectorJSON] = []
        for (name, ops, coalescing) in valid {
            let bytes = OperationBatch.encode(ops, coalescing: coalescing)
            let decoded = try OperationBatch.decode(bytes)
            guard coalescing || decoded == ops else { throw VectorGenerationError("\(name) does not round-trip") }
            cases.append(
                .object([
                    ("name", .string(name)), ("batch_hex", .hex(bytes)),
                    ("operations", .array(decoded.map(CRDTJSON.operation))),
                ]))
        }
        return .array(cases + (try malformed()))
    }

    static func metadataOperations() -> [CRDTOperation] {
        var folderReference = r1.bytes
        folderReference += [0, 0, 0, 0, 0, 0, 0, 22]
        return [
            op(r1, 13, at: 70, .setMetadata(.title, .text("Trip plans"))),
            op(r1, 14, at: 70, .setMetadata(.pinned, .flag(true))),
            op(r1, 15, at: 70, .setMetadata(.archived, .flag(false))),
            op(r1, 16, at: 70, .setMetadata(.model, .text("model-x"))),
            op(r1, 17, at: 70, .setMetadata(.folder, .bytes(folderReference))),
            op(r1, 18, at: 70, .setMetadata(.custom("theme"), .unset)),
        ]
    }

    static func typingRun() -> [CRDTOperation] {
        var ops = [op(r1, 100, at: 1000, .createMessage(parent: nil, role: .user, text: ""))]
        for (index, key) in ["h", "e", "l", "l", "o"].enumerated() {
            let after: OperationID? = index == 0 ? nil : id(r1, 100 + UInt64(index))
            ops.append(
                op(
                    r1, 101 + UInt64(index), at: 1001 + UInt64(index),
                    .insertText(message: id(r1, 100), after: after, before: nil, text: key)))
        }
        return ops
    }
}

extension BatchVectors {
    /// Batches a reader must refuse, each with the check that fails (the Swift error's name).
    static func malformed() throws -> [VectorJSON] {
        let head = Array("CKOB".utf8) + [1]
        let table = [UInt8(1)] + r1.bytes
        // One operation by replica 0 at counter 0, millis delta 0, logical 0: `kind ‖ 00 00 00 00`.
        func one(_ kind: UInt8, _ payload: [UInt8]) -> [UInt8] { head + table + [1, kind, 0, 0, 0, 0] + payload }
        let message: [UInt8] = [1, 0]  // ref: replica 0 (the author), delta 0
        let cases: [(String, [UInt8], String)] = [
            ("empty input", [], "truncated"),
            ("wrong magic", Array("CKOC".utf8) + [1, 0, 0], "badMagic"),
            ("unknown version 2", Array("CKOB".utf8) + [2, 0, 0], "unsupportedVersion"),
            ("the replica table repeats an id", head + [2] + r1.bytes + r1.bytes + [0], "replicaTableNotCanonical"),
            ("a replica count the remaining bytes cannot hold", head + [5] + r1.bytes, "countExceedsRemainingBytes"),
            ("an operation count the remaining bytes cannot hold", head + [0, 10], "countExceedsRemainingBytes"),
            ("unknown operation kind 9", one(9, []), "unknownOperationKind"),
            (
                "an author index outside the replica table", head + table + [1, 3, 1, 0, 0, 0] + message,
                "replicaIndexOutOfRange"
            ),
            ("a reference to a replica outside the table", one(3, [2, 0]), "replicaIndexOutOfRange"),
            ("a required reference is none", one(3, [0]), "requiredReferenceMissing"),
            ("an empty insertText", one(1, message + [0, 0, 0]), "invalidSpan"),
            ("text that is not UTF-8", one(0, [0, 0, 2, 0xC3, 0x28]), "invalidUTF8"),
            ("a UTF-8-encoded surrogate", one(0, [0, 0, 3, 0xED, 0xA0, 0x80]), "invalidUTF8"),
            ("unknown role 4", one(0, [0, 4, 0]), "unknownEnumerationValue"),
            ("unknown metadata value 5", one(5, [0, 5]), "unknownEnumerationValue"),
            (
                "a logical clock of 2^32", head + table + [1, 8, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0],
                "varintOverflow"
            ),
            (
                "a varint over 64 bits",
                head + table + [1, 8, 0] + [UInt8](repeating: 0xFF, count: 9) + [0x7F, 0, 0, 0, 0],
                "varintOverflow"
            ),
            ("a deleteText of 0 counters", one(2, [0] + message + [1, 1, 0, 1]), "invalidSpan"),
            ("a deletion span of 0 characters", one(2, [1] + message + [1, 1, 0, 0]), "invalidSpan"),
            ("cut inside an operation", one(0, [0]), "truncated"),
            ("a text longer than the bytes left", one(0, [0, 0, 5, 0x48]), "countExceedsRemainingBytes"),
            ("a byte after the last operation", one(3, message) + [0], "trailingBytes"),
        ]
        return try cases.map { name, bytes, expected in
            guard let error = failure(bytes), Self.name(of: error) == expected else {
                throw VectorGenerationError("\(name): \(String(describing: failure(bytes))), expected \(expected)")
            }
            return .object([("name", .string(name)), ("batch_hex", .hex(bytes)), ("error", .string(expected))])
        }
    }

    /// Why `bytes` do not decode, or nil when they do.
    static func failure(_ bytes: [UInt8]) -> CRDTDecodingError? {
        do {
            _ = try OperationBatch.decode(bytes)
            return nil
        } catch {
            return error
        }
    }

    static func name(of error: CRDTDecodingError) -> String {
        switch error {
        case .truncated: "truncated"
        case .badMagic: "badMagic"
        case .unsupportedVersion: "unsupportedVersion"
        case .varintOverflow: "varintOverflow"
        case .countExceedsRemainingBytes: "countExceedsRemainingBytes"
        case .limitExceeded: "limitExceeded"
        case .invalidUTF8: "invalidUTF8"
        case .unknownOperationKind: "unknownOperationKind"
        case .unknownEnumerationValue: "unknownEnumerationValue"
        case .requiredReferenceMissing: "requiredReferenceMissing"
        case .replicaIndexOutOfRange: "replicaIndexOutOfRange"
        case .replicaTableNotCanonical: "replicaTableNotCanonical"
        case .invalidSpan: "invalidSpan"
        case .inconsistentSnapshot: "inconsistentSnapshot"
        case .trailingBytes: "trailingBytes"
        }
    }
}
