import CloakCRDT
import CloakTesting
import Testing

/// ADV-47: a member that signs two operations with one id, or stamps writes far ahead, is
/// refused and reported identically on every device (CONVERSATIONS.md §6.2, §6.4).
@Suite("Operation id reuse and clock skew (ADV-47)")
struct OperationIDReuseTests {
    /// A physical time after every operation the tests write.
    static let now: UInt64 = 1_800_000_000_000

    /// An honest message, the equivocator's insert into it, and the same id reused with
    /// longer, different text.
    static func equivocation() throws -> (message: CRDTOperation, first: CRDTOperation, reuse: CRDTOperation) {
        var honest = Device(1)
        var equivocator = Device(9)
        let message = try honest.doc.createMessage(
            parent: nil, role: .user, text: "", replica: &honest.replica, physicalMillis: honest.tick())
        _ = equivocator.doc.apply([message], physicalMillis: equivocator.now)
        let first = try equivocator.doc.appendText(
            "AAAA", to: message.id, replica: &equivocator.replica, physicalMillis: equivocator.tick())
        let reuse = CRDTOperation(
            id: first.id, timestamp: first.timestamp,
            payload: .insertText(message: message.id, after: nil, before: nil, text: "BBBBBBBB"))
        return (message, first, reuse)
    }

    @Test("a longer reuse of an insert's ids is rejected everywhere, whether the first was applied or held")
    func longerReuseRejected() throws {
        let (message, first, reuse) = try Self.equivocation()
        var applied = ConversationDocument()
        let one = applied.apply([message, first, reuse], physicalMillis: Self.now)
        var held = ConversationDocument()
        let two = held.apply([first, reuse], physicalMillis: Self.now)
        #expect(two.held == [first.id])
        _ = held.apply([message], physicalMillis: Self.now)
        for (document, report) in [(applied, one), (held, two)] {
            #expect(report.rejected == [Rejection(id: reuse.id, reason: .reusedOperationID)])
            #expect(document.text(of: message.id) == "AAAA")
            #expect(document.pendingCount == 0)
        }
        #expect(applied.stateHash == held.stateHash)
        // The reuse's free counters are consumed: an insert built on them is refused, not held.
        let onTop = CRDTOperation(
            id: OperationID(replica: first.id.replica, counter: first.id.counter + 20), timestamp: first.timestamp,
            payload: .insertText(
                message: message.id, after: OperationID(replica: first.id.replica, counter: first.id.counter + 6),
                before: nil, text: "!"))
        #expect(
            applied.apply([onTop], physicalMillis: Self.now).rejected.map(\.reason) == [
                .invalidReference(OperationID(replica: first.id.replica, counter: first.id.counter + 6))
            ])
    }

    @Test("a same-length reuse with other text changes nothing and is reported")
    func sameLengthReuseReported() throws {
        let (message, first, _) = try Self.equivocation()
        let reuse = CRDTOperation(
            id: first.id, timestamp: first.timestamp,
            payload: .insertText(message: message.id, after: nil, before: nil, text: "AAAB"))
        var document = ConversationDocument()
        _ = document.apply([message, first], physicalMillis: Self.now)
        let before = document.stateHash
        let report = document.apply([reuse], physicalMillis: Self.now)
        #expect(report.rejected.map(\.reason) == [.reusedOperationID] && report.duplicates == 0)
        #expect(document.stateHash == before && document.text(of: message.id) == "AAAA")
    }

    @Test("exact repeats and regrouped repeats are duplicates, never reuses")
    func repeatsAreDuplicates() throws {
        var a = Device(1)
        let message = try a.doc.createMessage(
            parent: nil, role: .assistant, text: "", replica: &a.replica, physicalMillis: a.tick())
        var raw = [message]
        for chunk in ["Hel", "lo ", "wör", "ld"] {
            raw.append(try a.doc.appendText(chunk, to: message.id, replica: &a.replica, physicalMillis: a.tick()))
        }
        raw.append(try a.doc.setTitle("t", replica: &a.replica, physicalMillis: a.tick()))
        let coalesced = try OperationBatch.decode(OperationBatch.encode(raw))
        #expect(coalesced.count == 2)
        for (first, second) in [(raw, coalesced), (coalesced, raw), (raw, raw)] {
            var document = ConversationDocument()
            _ = document.apply(first, physicalMillis: a.now)
            let report = document.apply(second, physicalMillis: a.now)
            #expect(report.rejected.isEmpty && report.applied.isEmpty && report.duplicates == second.count)
            #expect(document.stateHash == a.doc.stateHash)
        }
    }

    @Test("reusing a register write's or a message's id for something else is rejected")
    func nonTextReuse() throws {
        var a = Device(1)
        let message = try a.doc.createMessage(
            parent: nil, role: .user, text: "hi", replica: &a.replica, physicalMillis: a.tick())
        let title = try a.doc.setTitle("real", replica: &a.replica, physicalMillis: a.tick())
        let forgedTitle = CRDTOperation(
            id: title.id, timestamp: title.timestamp, payload: .setMetadata(.title, .text("forged")))
        let forgedOnMessage = CRDTOperation(
            id: message.id, timestamp: message.timestamp, payload: .setMetadata(.model, .text("x")))
        let otherParent = CRDTOperation(
            id: message.id, timestamp: message.timestamp,
            payload: .createMessage(parent: nil, role: .assistant, text: "hi"))
        var document = ConversationDocument()
        _ = document.apply([message, title], physicalMillis: a.now)
        let report = document.apply([forgedTitle, forgedOnMessage, otherParent, title], physicalMillis: a.now)
        #expect(report.rejected.map(\.id) == [title.id, message.id, message.id] && report.duplicates == 1)
        #expect(document.metadata.title == "real" && document.metadata.model == nil)
        #expect(document.stateHash == a.doc.stateHash)
    }

    @Test("a device re-applying its own operations over a saved state gets the missing pieces; others do not")
    func ownReplay() throws {
        var a = Device(1)
        let message = try a.doc.createMessage(
            parent: nil, role: .user, text: "", replica: &a.replica, physicalMillis: a.tick())
        var typed = [message]
        for key in ["a", "b", "c"] {
            typed.append(try a.doc.appendText(key, to: message.id, replica: &a.replica, physicalMillis: a.tick()))
        }
        let saved = a.doc.snapshot()
        for key in ["d", "e", "f"] {
            typed.append(try a.doc.appendText(key, to: message.id, replica: &a.replica, physicalMillis: a.tick()))
        }
        let sealed = try OperationBatch.decode(OperationBatch.encode(typed))
        var own = try ConversationDocument(snapshot: saved)
        let ownReport = own.apply(sealed, physicalMillis: a.now, ownReplica: a.replica.id)
        #expect(ownReport.rejected.isEmpty && own.text(of: message.id) == "abcdef")
        #expect(own.stateHash == a.doc.stateHash)
        var other = try ConversationDocument(snapshot: saved)
        let otherReport = other.apply(sealed, physicalMillis: a.now)
        #expect(otherReport.rejected.map(\.reason) == [.reusedOperationID])
        #expect(other.text(of: message.id) == "abc")
    }

    @Test("a library folder id reused with another name is rejected")
    func libraryReuse() throws {
        var me = Replica(id: testReplicaID(1))
        var library = AccountLibraryDocument()
        let folder = try library.createFolder(name: "Work", replica: &me, physicalMillis: 1)
        let forged = CRDTOperation(id: folder.id, timestamp: folder.timestamp, payload: .createFolder(name: "Home"))
        var other = AccountLibraryDocument()
        let report = other.apply([folder, forged, folder], physicalMillis: 2)
        #expect(report.rejected.map(\.reason) == [.reusedOperationID] && report.duplicates == 1)
        #expect(other.folders.map(\.name) == ["Work"] && other.stateHash == library.stateHash)
    }

    @Test("ADV-28: a write beyond the skew window is deferred and reported, then applied once due")
    func skewDeferredAndReported() throws {
        var attacker = Device(2)
        let now: UInt64 = 1_700_000_000_000
        let window = HybridLogicalClock.defaultMaxSkewMillis
        let ahead = try attacker.doc.setTitle("early", replica: &attacker.replica, physicalMillis: now + window + 5)
        var document = ConversationDocument()
        let report = document.apply([ahead], physicalMillis: now)
        #expect(report.held.isEmpty && report.applied.isEmpty && document.pendingCount == 1)
        #expect(report.deferred == [Deferral(id: ahead.id, timestamp: ahead.timestamp, dueMillis: now + 5)])
        #expect(document.apply([ahead], physicalMillis: now + 4).duplicates == 1)
        let later = document.apply([], physicalMillis: now + 5)
        #expect(later.applied == [ahead.id] && later.deferred.isEmpty && document.metadata.title == "early")
    }
}
