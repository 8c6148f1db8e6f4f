import CloakCRDT
import CloakProtocol
import Foundation
import Synchronization
import Testing

@_spi(Simulation) @testable import CloakClient

/// A server that keeps the device log and the new epoch's key envelopes from one device:
/// it serves (and announces) the log as it was when the rule turned on, and only envelopes of
/// epochs that device had already been sent.
final class LogWithholding: Sendable {
    private struct State {
        var on = false
        var knownLength: UInt64 = 0
        var knownEpochs: Set<Data> = []
        var staleLogsServed = 0
    }

    private let state = Mutex(State())

    func set(_ on: Bool) { state.withLock { $0.on = on } }

    /// How many times the log was served without what it withholds.
    var staleLogsServed: Int { state.withLock { $0.staleLogsServed } }

    func rule(_ frame: Cloak_V1_Frame) -> [Cloak_V1_Frame] {
        var out = frame
        let keep: Bool = state.withLock { s in
            switch frame.body {
            case .authResult(var result):
                if s.on { result.deviceLogLength = min(result.deviceLogLength, s.knownLength) }
                s.knownLength = max(s.knownLength, result.deviceLogLength)
                out.body = .authResult(result)
            case .deviceLogEntries(var log):
                let indexes = log.entries.map { (try? DeviceLogEntry(wire: Array($0)))?.index ?? .max }
                guard s.on else {
                    s.knownLength = max(s.knownLength, log.logLength, (indexes.filter { $0 != .max }.max() ?? 0) + 1)
                    return true
                }
                log.entries = zip(log.entries, indexes).filter { $0.1 < s.knownLength }.map(\.0)
                log.logLength = min(log.logLength, s.knownLength)
                s.staleLogsServed += 1
                out.body = .deviceLogEntries(log)
            case .accountNotice(let notice):
                return !(s.on && notice.deviceLogLength > s.knownLength)
            case .keyEnvelopes(var envelopes):
                let id = { (envelope: Cloak_V1_KeyEnvelope) in envelope.conversationID + withUnsafeBytes(of: envelope.epoch, { Data($0) }) }
                if s.on {
                    envelopes.envelopes.removeAll { !s.knownEpochs.contains(id($0)) }
                } else {
                    s.knownEpochs.formUnion(envelopes.envelopes.map(id))
                }
                out.body = .keyEnvelopes(envelopes)
            default: break
            }
            return true
        }
        return keep ? [out] : []
    }
}

extension HostileServerEndToEndTests {
    @Test("ADV-45 ADV-12 a withheld removal (log entry and new epoch's envelopes) is deviceLogWithheld, and the device seals nothing until the log arrives")
    func withheldRemoval() async throws {
        let root = try temporaryDirectory("hostile-removal")
        defer { try? FileManager.default.removeItem(at: root) }
        let withholding = LogWithholding()
        try await withServer { server in
            let a = try Hostile.honest(root.appendingPathComponent("a"), server)
            let b = try Hostile.client(root.appendingPathComponent("b"), server) { withholding.rule($0) }
            let c = try Hostile.honest(root.appendingPathComponent("c"), server)
            try await a.createAccount()
            try await link(b, to: a)
            try await link(c, to: a)
            for device in [a, b, c] { await device.startSync() }
            let chat = try await a.createConversation(title: "cloak-canary-removal")
            try await Hostile.write("one", by: a, in: chat)
            try await eventually("everyone has the first message and knows three devices") {
                let (onB, onC) = (await Hostile.texts(b, chat), await Hostile.texts(c, chat))
                let known = try await b.devices().filter(\.isActive).count
                return onB == ["one"] && onC == ["one"] && known == 3
            }

            // A removes C; the server keeps that from B and relays A's next change set.
            withholding.set(true)
            try await a.removeDevice(c.deviceID)
            try await eventually("a removed c") { try await a.devices().filter(\.isActive).count == 2 }
            try await Hostile.write("after the removal", by: a, in: chat)
            try await eventually("b reports the withheld log") { try await !Hostile.events(b, .deviceLogWithheld).isEmpty }
            #expect(await Hostile.texts(b, chat) == ["one"])
            #expect(await b.syncStatus().incidents.contains { $0.kind == .deviceLogWithheld })

            // B writes meanwhile: kept, but sealed under no log it knows is stale. Two more
            // looks at the log (each a chance to seal) go by first.
            _ = try await b.appendMessage(to: chat, role: .user, text: "from b while stale")
            let served = withholding.staleLogsServed
            try await eventually("b looked at the log twice more") { withholding.staleLogsServed >= served + 2 }
            // And even when told to seal now, it does not.
            #expect(try await b._sealAndPeekOutbox().filter { $0.header.conversation == chat }.isEmpty)
            #expect(await b.syncStatus().unacknowledgedEdits > 0)
            #expect(await !a.allMessageTexts(chat).contains("from b while stale"))

            // The server turns honest: B verifies the removal, reads the new epoch, seals its edit.
            withholding.set(false)
            try await eventually("b catches up and a has b's edit") {
                let open = await b.syncStatus().incidents.contains { $0.kind == .deviceLogWithheld }
                let same = await converged([a, b], [chat])
                let sealed = await a.allMessageTexts(chat).contains("from b while stale")
                return !open && same && sealed
            }
            // Every branch: B wrote before it could see A's message, so the two are siblings.
            #expect(Set(await b.allMessageTexts(chat)) == ["one", "after the removal", "from b while stale"])
            #expect(try await b.devices().first { $0.id == c.deviceID }?.isActive == false)
            // B's edit went out under the epoch that excludes C, never under the old one.
            let headers = try await a._allChangeSetWires().map { try ChangeSet(wire: $0).header }.filter { $0.conversation == chat }
            let first = try #require(headers.filter { $0.author == a.deviceID }.min { $0.seq < $1.seq })
            let fromA = try #require(headers.filter { $0.author == a.deviceID }.max { $0.seq < $1.seq })
            let fromB = try #require(headers.filter { $0.author == b.deviceID }.max { $0.seq < $1.seq })
            #expect(fromB.epoch == fromA.epoch && fromB.epoch > first.epoch)
            // The removed device renders nothing written after its removal.
            let onC = await c.allMessageTexts(chat)
            #expect(!onC.contains("after the removal") && !onC.contains("from b while stale"))
            for device in [a, b, c] { try await device.close() }
        }
    }

    @Test("ADV-13 conflicting signed head claims shown to an observer raise a fork alarm; the other version is never rendered")
    func splitViewIsAFork() async throws {
        let root = try temporaryDirectory("hostile-fork")
        defer { try? FileManager.default.removeItem(at: root) }
        let victim = Victim()
        let twin = Mutex<(seq: UInt64, wire: Data)?>(nil)
        let shown = Mutex(0)
        // C is shown the twin's version of A's change set in place of the one the server stores.
        let rule: @Sendable (Cloak_V1_Frame) -> [Cloak_V1_Frame] = { frame in
            [Hostile.deliveries(frame) { items in
                items.map { item in
                    guard let header = Hostile.header(item), victim.matches(header),
                        let twin = twin.withLock({ $0 }), header.seq == twin.seq
                    else { return item }
                    shown.withLock { $0 += 1 }
                    var copy = item
                    copy.changeSet = twin.wire
                    return copy
                }
            }]
        }
        try await withServer { server in
            var a = try Hostile.honest(root.appendingPathComponent("a"), server)
            let b = try Hostile.honest(root.appendingPathComponent("b"), server)
            let c = try Hostile.client(root.appendingPathComponent("c"), server, rule)
            try await a.createAccount()
            try await link(b, to: a)
            try await link(c, to: a)
            for device in [a, b, c] { await device.startSync() }
            let chat = try await a.createConversation(title: "cloak-canary-fork")
            try await Hostile.write("one", by: a, in: chat)
            try await eventually("everyone has the first message") {
                let (onB, onC) = (await Hostile.texts(b, chat), await Hostile.texts(c, chat))
                return onB == ["one"] && onC == ["one"]
            }

            // A copy of A's device (its keys and state) signs another "next" change set.
            try await a.close()
            try FileManager.default.copyItem(at: root.appendingPathComponent("a"), to: root.appendingPathComponent("twin"))
            a = try Hostile.honest(root.appendingPathComponent("a"), server)
            await a.startSync()
            let copy = try Hostile.honest(root.appendingPathComponent("twin"), server)  // never connects
            _ = try await copy.appendMessage(to: chat, role: .user, text: "version two")
            let sealed = try #require(try await copy._sealAndPeekOutbox().last { $0.header.conversation == chat })
            try await copy.close()
            victim.set(a.deviceID, chat)
            twin.withLock { $0 = (sealed.header.seq, Data(sealed.wire)) }

            try await Hostile.write("version one", by: a, in: chat)
            try await eventually("b and c were shown different versions") {
                let (onB, onC) = (await Hostile.texts(b, chat), await Hostile.texts(c, chat))
                return onB == ["one", "version one"] && onC == ["one", "version two"]
            }
            #expect(shown.withLock { $0 } >= 1)
            // C writes: its change set signs the head of A's chain it holds, and B holds another.
            // (Not waited on as synced: C's own look at the server's heads may already have
            // found the split and opened an incident.)
            _ = try await c.appendMessage(to: chat, role: .user, text: "from c")
            try await eventually("b raises a fork alarm") {
                try await Hostile.events(b, .forkedView).contains { $0.device == a.deviceID && $0.conversation == chat }
            }
            #expect(await !Hostile.texts(b, chat).contains("version two"))
            for device in [a, b, c] { try await device.close() }
        }
    }
}
