import CloakCRDT
import CloakTesting
import Testing

@Suite("Conversation semantics")
struct ConversationTests {
    @Test("tree, siblings by creation clock, branch selection (LWW) and the active branch")
    func treeAndBranches() throws {
        var a = Device(1)
        var b = Device(2)
        let ask = try a.doc.createMessage(parent: nil, role: .user, text: "Q", replica: &a.replica, physicalMillis: 100)
        let reply = try a.doc.createMessage(
            parent: ask.id, role: .assistant, text: "A1", replica: &a.replica, physicalMillis: 101)
        _ = b.doc.apply([reply, ask], physicalMillis: 101)
        let regenerated = try b.doc.branch(
            from: reply.id, role: .assistant, text: "A2", replica: &b.replica, physicalMillis: 200)
        #expect(b.doc.activeBranch().map(\.text) == ["Q", "A2"])
        _ = a.doc.apply(regenerated, physicalMillis: 201)
        #expect(a.doc.children(of: ask.id) == [reply.id, regenerated[0].id])
        #expect(a.doc.activeBranch().map(\.text) == ["Q", "A2"])
        #expect(a.doc.activeBranch().last?.siblingIndex == 1 && a.doc.activeBranch().last?.siblingCount == 2)

        // Concurrent selections: the later HLC reading wins on both replicas.
        let selectA = try a.doc.selectBranch(reply.id, replica: &a.replica, physicalMillis: 300)
        let selectB = try b.doc.selectBranch(regenerated[0].id, replica: &b.replica, physicalMillis: 301)
        _ = a.doc.apply([selectB], physicalMillis: 302)
        _ = b.doc.apply([selectA], physicalMillis: 302)
        #expect(a.doc.activeChild(of: ask.id) == regenerated[0].id)
        #expect(a.doc.stateHash == b.doc.stateHash)
    }

    @Test("a deleted message is a flagged tombstone and the active branch moves to a live sibling")
    func deletion() throws {
        var a = Device(1)
        let ask = try a.doc.createMessage(parent: nil, role: .user, text: "Q", replica: &a.replica, physicalMillis: 1)
        let first = try a.doc.createMessage(
            parent: ask.id, role: .assistant, text: "one", replica: &a.replica, physicalMillis: 2)
        let second = try a.doc.branch(
            from: first.id, role: .assistant, text: "two", replica: &a.replica, physicalMillis: 3)
        _ = try a.doc.deleteMessage(second[0].id, replica: &a.replica, physicalMillis: 4)
        #expect(a.doc.activeBranch().map(\.text) == ["Q", "one"])
        #expect(a.doc.message(second[0].id)?.isDeleted == true)
        #expect(a.doc.message(second[0].id)?.text == "")
    }

    @Test("metadata registers: last writer wins, ties broken by replica id")
    func metadata() throws {
        var a = Device(1)
        var b = Device(2)
        let titleA = try a.doc.setTitle("from A", replica: &a.replica, physicalMillis: 500)
        let titleB = try b.doc.setTitle("from B", replica: &b.replica, physicalMillis: 500)
        let pin = try b.doc.setMetadata(.pinned, to: .flag(true), replica: &b.replica, physicalMillis: 501)
        let folder = try a.doc.setFolder(
            OperationID(replica: testReplicaID(9), counter: 4), replica: &a.replica, physicalMillis: 502)
        _ = a.doc.apply([titleB, pin], physicalMillis: 600)
        _ = b.doc.apply([folder, titleA], physicalMillis: 600)
        #expect(a.doc.metadata == b.doc.metadata)
        #expect(a.doc.metadata.title == "from B")  // same reading; replica 2 > replica 1
        #expect(a.doc.metadata.pinned)
        #expect(a.doc.metadata.folder == OperationID(replica: testReplicaID(9), counter: 4))
    }

    @Test("reactions are an add-wins set: a concurrent add survives a remove")
    func reactionsAddWins() throws {
        var a = Device(1)
        var b = Device(2)
        let message = try a.doc.createMessage(
            parent: nil, role: .user, text: "hi", replica: &a.replica, physicalMillis: 1)
        let thumbs = Reaction(emoji: "👍", reactor: [7])
        let add = try a.doc.addReaction(thumbs, to: message.id, replica: &a.replica, physicalMillis: 2)
        _ = b.doc.apply([message, add], physicalMillis: 3)
        let remove = try b.doc.removeReaction(thumbs, from: message.id, replica: &b.replica, physicalMillis: 4)
        let again = try a.doc.addReaction(thumbs, to: message.id, replica: &a.replica, physicalMillis: 4)
        _ = a.doc.apply([remove], physicalMillis: 5)
        _ = b.doc.apply([again], physicalMillis: 5)
        #expect(a.doc.message(message.id)?.reactions == [thumbs])
        #expect(a.doc.stateHash == b.doc.stateHash)
        let last = try a.doc.removeReaction(thumbs, from: message.id, replica: &a.replica, physicalMillis: 6)
        _ = b.doc.apply([last], physicalMillis: 7)
        #expect(b.doc.message(message.id)?.reactions == [])
    }

    @Test("read markers are max registers per device")
    func readMarkers() throws {
        var a = Device(1)
        let high = try a.doc.markRead(
            upTo: HLCTimestamp(millis: 50, logical: 0), replica: &a.replica, physicalMillis: 60)
        let low = try a.doc.markRead(
            upTo: HLCTimestamp(millis: 10, logical: 0), replica: &a.replica, physicalMillis: 61)
        var other = ConversationDocument()
        _ = other.apply([low, high], physicalMillis: 70)
        #expect(other.readMarkers[testReplicaID(1)] == HLCTimestamp(millis: 50, logical: 0))
        #expect(a.doc.readMarkers == other.readMarkers)
    }

    @Test("operations with missing dependencies are held, counted, then applied; duplicates are ignored")
    func holdingAndIdempotence() throws {
        var a = Device(1)
        let root = try a.doc.createMessage(parent: nil, role: .user, text: "a", replica: &a.replica, physicalMillis: 1)
        let child = try a.doc.createMessage(
            parent: root.id, role: .assistant, text: "b", replica: &a.replica, physicalMillis: 2)
        let edit = try a.doc.appendText("c", to: child.id, replica: &a.replica, physicalMillis: 3)
        var other = ConversationDocument()
        let first = other.apply([edit, child], physicalMillis: 4)
        #expect(first.held.count == 2 && first.applied.isEmpty && other.pendingCount == 2)
        let second = other.apply([root, root, edit], physicalMillis: 5)
        #expect(second.applied == [root.id, child.id, edit.id])
        #expect(second.duplicates == 2 && other.pendingCount == 0)
        #expect(other.stateHash == a.doc.stateHash)
    }

    @Test("ADV-29: the pending buffer is bounded and reports overflow; a deep chain releases without recursion")
    func boundedPending() throws {
        var a = Device(1)
        var ops: [CRDTOperation] = []
        var parent: MessageID?
        for index in 0..<3_000 {
            let op = try a.doc.createMessage(
                parent: parent, role: .user, text: "", replica: &a.replica, physicalMillis: UInt64(index))
            ops.append(op)
            parent = op.id
        }
        var small = ConversationDocument(limits: DeliveryLimits(pendingOperationsMax: 100))
        let report = small.apply(Array(ops.dropFirst().reversed()), physicalMillis: 10_000)
        #expect(report.held.count == 100 && report.overflowed.count == ops.count - 101)
        #expect(small.pendingCount == 100)

        var deep = ConversationDocument()
        _ = deep.apply(Array(ops.dropFirst().reversed()), physicalMillis: 10_000)
        let released = deep.apply([ops[0]], physicalMillis: 10_000)
        #expect(released.applied.count == ops.count && deep.pendingCount == 0)
        #expect(deep.activePath().count == ops.count)
    }

    @Test("ADV-28: a write stamped years ahead is deferred, honest later writes win, and replicas agree")
    func futureWritesDeferred() throws {
        var honest = Device(1)
        var attacker = Device(2)
        let tenYears: UInt64 = 10 * 365 * 24 * 3_600_000
        let evil = try attacker.doc.setTitle("pwned", replica: &attacker.replica, physicalMillis: honest.now + tenYears)
        let report = honest.doc.apply([evil], physicalMillis: honest.now)
        #expect(report.deferred.map(\.id) == [evil.id] && report.held.isEmpty && honest.doc.metadata.title == nil)
        let fine = try honest.doc.setTitle("real", replica: &honest.replica, physicalMillis: honest.tick())
        var other = ConversationDocument()
        _ = other.apply([fine, evil], physicalMillis: honest.now)
        #expect(other.metadata.title == "real" && honest.doc.stateHash == other.stateHash)
        honest.replica.observe(report.newestTimestamp, physicalMillis: honest.now)
        #expect(honest.replica.clock.latest.millis < honest.now + tenYears)
    }

    @Test("invalid operations are rejected deterministically, never misapplied")
    func rejections() throws {
        var a = Device(1)
        let one = try a.doc.createMessage(parent: nil, role: .user, text: "abc", replica: &a.replica, physicalMillis: 1)
        let two = try a.doc.createMessage(parent: nil, role: .user, text: "xyz", replica: &a.replica, physicalMillis: 2)
        let foreign = CRDTOperation(
            id: OperationID(replica: testReplicaID(5), counter: 0), timestamp: HLCTimestamp(millis: 3, logical: 0),
            payload: .insertText(message: two.id, after: one.id.advanced(1), before: nil, text: "!"))
        let key = try #require(ConversationKey(bytes: [UInt8](repeating: 1, count: 16)))
        let wrongKind = CRDTOperation(
            id: OperationID(replica: testReplicaID(5), counter: 1), timestamp: HLCTimestamp(millis: 3, logical: 0),
            payload: .addConversation(key))
        let mismatch = CRDTOperation(
            id: OperationID(replica: testReplicaID(5), counter: 2), timestamp: HLCTimestamp(millis: 3, logical: 0),
            payload: .selectBranch(parent: one.id, child: two.id))
        let before = a.doc.stateHash
        let report = a.doc.apply([foreign, wrongKind, mismatch], physicalMillis: 5)
        #expect(
            report.rejected.map(\.reason) == [
                .invalidReference(one.id.advanced(1)), .wrongDocumentKind, .parentMismatch,
            ])
        #expect(a.doc.text(of: two.id) == "xyz")
        #expect(a.doc.stateHash != before)  // the refused ids are recorded as consumed
    }

    @Test("a replica restored from an old backup does not reuse counters the document has seen")
    func counterReuseHealed() throws {
        var a = Device(1)
        let backup = a.replica
        let first = try a.doc.createMessage(
            parent: nil, role: .user, text: "hey", replica: &a.replica, physicalMillis: 1)
        var restored = backup
        let second = try a.doc.createMessage(
            parent: nil, role: .user, text: "again", replica: &restored, physicalMillis: 2)
        #expect(second.id.counter >= first.id.counter + first.counterCount)
        #expect(a.doc.messageCount == 2)
    }
}

extension OperationID {
    func advanced(_ offset: UInt64) -> OperationID { OperationID(replica: replica, counter: counter + offset) }
}
