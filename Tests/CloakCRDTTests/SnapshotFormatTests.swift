import CloakCRDT
import CloakTesting
import Testing

/// The snapshot format's checks, field by field, on hand-built snapshots (`SnapshotBytes`):
/// each malformed case breaks one thing and must throw its typed error (ADV-17: local
/// persisted state is untrusted input too).
@Suite("Snapshot format")
struct SnapshotFormatTests {
    typealias S = SnapshotBytes

    /// "héllo" (6 bytes, 5 scalars) as one plain message, plus an ASCII reply under it.
    static func valid() -> SnapshotBytes {
        var snapshot = SnapshotBytes()
        snapshot.content = Array("héllo".utf8) + Array("ok".utf8)
        snapshot.records = [
            S.record(S.plain, counter: 0, tail: S.plainText(scalars: 5, extraBytes: 1)),
            S.record(
                S.plain | 1, counter: 6, parentDistance: 1, millisDelta: 3,
                tail: S.plainText(scalars: 2)),
        ]
        return snapshot
    }

    @Test("a hand-built snapshot loads, renders, and re-encodes to the same bytes")
    func handBuiltSnapshotLoads() throws {
        let bytes = Self.valid().encoded
        let doc = try ConversationDocument(snapshot: bytes)
        let root = OperationID(replica: testReplicaID(1), counter: 0)
        #expect(doc.text(of: root) == "héllo")
        #expect(doc.activeBranch().map(\.text) == ["héllo", "ok"])
        #expect(doc.activeBranch().map(\.role) == [.user, .assistant])
        #expect(doc.message(OperationID(replica: testReplicaID(1), counter: 6))?.created.millis == 3)
        #expect(doc.snapshot() == bytes)
    }

    @Test("ADV-17: the version byte is checked; version 1 snapshots are refused")
    func oldVersionRefused() {
        var snapshot = Self.valid()
        snapshot.version = 1
        #expect(throws: CRDTDecodingError.unsupportedVersion(1)) {
            try ConversationDocument(snapshot: snapshot.encoded)
        }
    }

    @Test("ADV-17: invalid UTF-8 anywhere in the content column throws invalidUTF8")
    func invalidContentUTF8() {
        var snapshot = Self.valid()
        snapshot.content[1] = 0xFF
        #expect(throws: CRDTDecodingError.invalidUTF8) { try ConversationDocument(snapshot: snapshot.encoded) }
        snapshot = Self.valid()
        snapshot.content.append(0xC3)  // a truncated sequence at the very end
        #expect(throws: CRDTDecodingError.invalidUTF8) { try ConversationDocument(snapshot: snapshot.encoded) }
    }

    @Test("ADV-17: a run that starts or ends inside a multi-byte scalar throws invalidUTF8")
    func runBoundaryInsideScalar() {
        var snapshot = Self.valid()
        // "h" + the first byte of "é" as the first message (2 bytes, 2 scalars on their own
        // count), the rest of the column as the second: the column is valid, the runs are not.
        snapshot.content = Array("hé".utf8) + Array("llook".utf8)
        snapshot.records = [
            S.record(S.plain, counter: 0, tail: S.plainText(scalars: 2)),
            S.record(S.plain | 1, counter: 6, parentDistance: 1, tail: S.plainText(scalars: 6, extraBytes: 0)),
        ]
        #expect(throws: CRDTDecodingError.invalidUTF8) { try ConversationDocument(snapshot: snapshot.encoded) }
    }

    @Test(
        "ADV-17: run lengths that do not match the content throw inconsistentSnapshot",
        arguments: [(5, 0), (6, 0), (4, 1), (4, 2)] as [(UInt64, UInt64)])
    func runLengthMismatch(scalars: UInt64, extraBytes: UInt64) {
        var snapshot = Self.valid()
        snapshot.records[0] = S.record(
            S.plain, counter: 0, tail: S.plainText(scalars: scalars, extraBytes: extraBytes))
        #expect(throws: CRDTDecodingError.inconsistentSnapshot) { try ConversationDocument(snapshot: snapshot.encoded) }
    }

    @Test("ADV-17: ASCII content checks byte counts against scalar counts too")
    func asciiLengthMismatch() {
        var snapshot = SnapshotBytes()
        snapshot.content = Array("hello".utf8)
        snapshot.records = [S.record(S.plain, counter: 0, tail: S.plainText(scalars: 4, extraBytes: 1))]
        #expect(throws: CRDTDecodingError.inconsistentSnapshot) { try ConversationDocument(snapshot: snapshot.encoded) }
        snapshot.records = [S.record(S.plain, counter: 0, tail: S.plainText(scalars: 4))]  // a byte left over
        #expect(throws: CRDTDecodingError.inconsistentSnapshot) { try ConversationDocument(snapshot: snapshot.encoded) }
    }

    @Test(
        "ADV-17: reserved flag bits and the unused text shape are unknown values",
        arguments: [0x40, 0x80, 0x30] as [UInt8])
    func unknownFlags(flags: UInt8) {
        var snapshot = Self.valid()
        snapshot.records[0][0] = flags
        #expect(throws: CRDTDecodingError.unknownEnumerationValue(flags)) {
            try ConversationDocument(snapshot: snapshot.encoded)
        }
    }

    @Test("ADV-17: a parent must be an earlier record, and children must come in sibling order")
    func treeStructure() {
        var snapshot = Self.valid()
        snapshot.records[0] = S.record(
            S.plain, counter: 0, parentDistance: 1, tail: S.plainText(scalars: 5, extraBytes: 1))
        #expect(throws: CRDTDecodingError.inconsistentSnapshot) { try ConversationDocument(snapshot: snapshot.encoded) }

        // Two roots at the same millis, the second with the smaller logical clock.
        snapshot = SnapshotBytes()
        snapshot.records = [
            S.record(S.user, counter: 0, logical: 1),
            S.record(S.user, counter: 1, logical: 0),
        ]
        #expect(throws: CRDTDecodingError.inconsistentSnapshot) { try ConversationDocument(snapshot: snapshot.encoded) }

        // The same message twice (in sibling order by logical clock, so only the id repeats).
        snapshot.records = [
            S.record(S.user, counter: 7, logical: 0),
            S.record(S.user, counter: 7, logical: 1),
        ]
        #expect(throws: CRDTDecodingError.inconsistentSnapshot) { try ConversationDocument(snapshot: snapshot.encoded) }

        snapshot.records = [S.record(S.user, counter: 0, replica: 1)]
        #expect(throws: CRDTDecodingError.replicaIndexOutOfRange) {
            try ConversationDocument(snapshot: snapshot.encoded)
        }
    }

    @Test("ADV-17: an explicit run list is never empty")
    func emptyRunList() {
        var snapshot = SnapshotBytes()
        snapshot.records = [S.record(S.runList, counter: 0, tail: S.varint(0))]
        #expect(throws: CRDTDecodingError.inconsistentSnapshot) { try ConversationDocument(snapshot: snapshot.encoded) }
    }

    @Test("ADV-17: reactions must be present when flagged, ascending, each with ascending tags")
    func reactionChecks() throws {
        let thumbs = (emoji: "👍", reactor: [UInt8](repeating: 1, count: 16), tags: [(UInt64(0), UInt64(9))])
        let heart = (emoji: "❤️", reactor: [UInt8](repeating: 1, count: 16), tags: [(UInt64(0), UInt64(10))])
        func snapshot(_ reactions: [UInt8]) -> [UInt8] {
            var snapshot = SnapshotBytes()
            snapshot.records = [S.record(S.hasReactions, counter: 0, tail: reactions)]
            return snapshot.encoded
        }
        // "❤️" (E2 9D A4 …) sorts before "👍" (F0 9F …) by UTF-8 bytes.
        let loaded = try ConversationDocument(snapshot: snapshot(S.reactions([heart, thumbs])))
        #expect(loaded.activeBranch().first?.reactions.map(\.emoji) == ["❤️", "👍"])
        let bad: [[UInt8]] = [
            S.reactions([]),
            S.reactions([thumbs, heart]),
            S.reactions([heart, heart]),
            S.reactions([(heart.emoji, heart.reactor, [])]),
            S.reactions([(heart.emoji, heart.reactor, [(0, 10), (0, 9)])]),
        ]
        for reactions in bad {
            #expect(throws: CRDTDecodingError.inconsistentSnapshot) {
                try ConversationDocument(snapshot: snapshot(reactions))
            }
        }
    }

    @Test("ADV-17: a huge message count is refused before allocating")
    func hugeMessageCount() {
        var snapshot = Self.valid()
        snapshot.messageCount = 1 << 30
        #expect(throws: CRDTDecodingError.countExceedsRemainingBytes) {
            try ConversationDocument(snapshot: snapshot.encoded)
        }
        snapshot.messageCount = 1 << 40  // more than Int32 slots can number
        #expect(throws: CRDTDecodingError.limitExceeded(.operationsPerBatch)) {
            try ConversationDocument(snapshot: snapshot.encoded)
        }
    }
}
