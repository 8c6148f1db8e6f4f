import CloakCRDT
import CloakProtocol
import Foundation
import Synchronization
import Testing

@_spi(Simulation) @testable import CloakClient

/// PROTOCOL.md §30 over real WebSockets: devices on the public client API, a real loopback
/// server, and between the server and one device a hostile rule that drops, damages, replays
/// and reorders what that device receives (what a malicious server, or anything on its path,
/// can do). Each test names the event the device must raise, checks that it renders nothing it
/// should not, and — once the rule turns honest — that every device converges with nothing lost.
@Suite("End to end: a hostile server between real devices", .serialized, .timeLimit(.minutes(3)))
struct HostileServerEndToEndTests {
    @Test("ADV-45 ADV-07 a change set dropped for good is reported withheld, naming author and conversation, and resolved once delivered")
    func droppedForGood() async throws {
        let root = try temporaryDirectory("hostile-drop")
        defer { try? FileManager.default.removeItem(at: root) }
        let victim = Victim()
        let dropping = Flag()
        let target = Mutex<UInt64?>(nil)  // the seq withheld: the victim's next change set
        let rule: @Sendable (Cloak_V1_Frame) -> [Cloak_V1_Frame] = { frame in
            guard dropping.isOn else { return [frame] }
            return [Hostile.deliveries(frame) { items in
                items.filter { item in
                    let header = Hostile.header(item)
                    guard victim.matches(header), let seq = header?.seq else { return true }
                    return target.withLock { target in
                        if target == nil { target = seq }
                        return seq != target  // every copy of it: live, catch-up and re-fetched
                    }
                }
            }]
        }
        try await withServer { server in
            let a = try Hostile.honest(root.appendingPathComponent("a"), server)
            let b = try Hostile.client(root.appendingPathComponent("b"), server, rule)
            try await a.createAccount()
            try await link(b, to: a)
            await a.startSync()
            await b.startSync()
            let chat = try await a.createConversation(title: "cloak-canary-dropped")
            try await Hostile.write("one", by: a, in: chat)
            try await eventually("b has the first message") { await Hostile.texts(b, chat) == ["one"] }

            victim.set(a.deviceID, chat)
            dropping.set(true)
            try await Hostile.write("two", by: a, in: chat)  // withheld from B for good
            try await Hostile.write("three", by: a, in: chat)  // names "two" through its chain
            // Within a few `withheld_after` (600 ms), not at some later ping: bounded well below
            // the 15 s ping interval, so a report that waits for a ping fails here.
            try await eventually(timeout: .seconds(10), "b reports the withheld change set") {
                try await Hostile.events(b, .withheld).contains { $0.device == a.deviceID && $0.conversation == chat }
            }
            let withheld = try #require(try await Hostile.events(b, .withheld).first)
            let seq = try #require(target.withLock { $0 })
            // The range starts at the withheld one.
            #expect(withheld.seq == seq)
            #expect(withheld.detail.contains("change sets \(seq)…"))
            // Nothing after the hole is rendered, and B does not call itself synced.
            #expect(await Hostile.texts(b, chat) == ["one"])
            #expect(await b.syncStatus().incidents.contains { $0.kind == .withheld && $0.device == a.deviceID })
            #expect(await !b.syncStatus().isSynced)

            // The server turns honest: B, which kept asking, gets it, and the incident closes.
            dropping.set(false)
            try await eventually("b converges once the change set is delivered") {
                let same = await converged([a, b], [chat])
                let open = await b.syncStatus().incidents.contains { $0.kind == .withheld }
                return same && !open
            }
            #expect(await Hostile.texts(b, chat) == ["one", "two", "three"])
            #expect(try await !Hostile.events(b, .incidentResolved).isEmpty)
            // A, on the honest path, saw nothing but B joining.
            #expect(try await a.recordedSecurityEvents().allSatisfy { $0.kind == .deviceAdded })
            try await a.close()
            try await b.close()
        }
    }

    @Test("ADV-02 ADV-45 a truncated and a byte-flipped delivery are rejected with events, fetched again and applied")
    func damagedDeliveries() async throws {
        let root = try temporaryDirectory("hostile-damage")
        defer { try? FileManager.default.removeItem(at: root) }
        let victim = Victim()
        let damaging = Flag()
        let damaged = Mutex<[UInt64]>([])  // seqs damaged once each: the first truncated, the second flipped
        let rule: @Sendable (Cloak_V1_Frame) -> [Cloak_V1_Frame] = { frame in
            guard damaging.isOn else { return [frame] }
            return [Hostile.deliveries(frame) { items in
                items.map { item in
                    let header = Hostile.header(item)
                    guard victim.matches(header), let seq = header?.seq else { return item }
                    let position = damaged.withLock { seqs -> Int? in
                        guard !seqs.contains(seq), seqs.count < 2 else { return nil }
                        seqs.append(seq)
                        return seqs.count
                    }
                    guard let position else { return item }  // later copies pass intact
                    var copy = item
                    var bytes = Array(item.changeSet)
                    if position == 1 {
                        bytes.removeLast(bytes.count / 3)
                    } else {
                        bytes[bytes.count / 2] ^= 0x40
                    }
                    copy.changeSet = Data(bytes)
                    return copy
                }
            }]
        }
        try await withServer { server in
            let a = try Hostile.honest(root.appendingPathComponent("a"), server)
            let b = try Hostile.client(root.appendingPathComponent("b"), server, rule)
            try await a.createAccount()
            try await link(b, to: a)
            await a.startSync()
            await b.startSync()
            let chat = try await a.createConversation(title: "cloak-canary-damaged")
            try await Hostile.write("one", by: a, in: chat)
            try await eventually("b has the first message") { await Hostile.texts(b, chat) == ["one"] }

            victim.set(a.deviceID, chat)
            damaging.set(true)
            try await Hostile.write("two", by: a, in: chat)
            try await Hostile.write("three", by: a, in: chat)
            let expected = ["one", "two", "three"]
            try await eventually("b is whole again") {
                let texts = await Hostile.texts(b, chat)
                // Never anything but a prefix of what A wrote, in A's order.
                #expect(Array(expected.prefix(texts.count)) == texts)
                return await converged([a, b], [chat])
            }
            #expect(damaged.withLock { $0.count } == 2)
            let rejections = try await b.recordedSecurityEvents().filter { Healing.damageKinds.contains($0.kind) }
            #expect(rejections.count >= 2)
            #expect(rejections.allSatisfy { $0.device == nil || $0.device == a.deviceID })
            #expect(await Hostile.texts(b, chat) == expected)
            try await eventually("b is synced") { await b.syncStatus().isSynced }
            try await a.close()
            try await b.close()
        }
    }

    @Test("ADV-04 ADV-07 replayed and reordered deliveries, also after a restart, apply nothing twice and raise nothing")
    func replayAndReorder() async throws {
        let root = try temporaryDirectory("hostile-replay")
        defer { try? FileManager.default.removeItem(at: root) }
        let replaying = Flag()
        let seen = Mutex<[Cloak_V1_StoredChangeSet]>([])
        let replays = Mutex(0)
        let rule: @Sendable (Cloak_V1_Frame) -> [Cloak_V1_Frame] = { frame in
            [Hostile.deliveries(frame) { items in
                guard !items.isEmpty else { return items }
                let old = seen.withLock { old in
                    defer { old += items }
                    return old
                }
                guard replaying.isOn else { return items }
                replays.withLock { $0 += 1 }
                // Every change set delivered before, under its old cursor, then this batch,
                // all in reverse order: later seqs of a chain arrive before earlier ones.
                return (old + items).reversed()
            }]
        }
        try await withServer { server in
            let a = try Hostile.honest(root.appendingPathComponent("a"), server)
            var b = try Hostile.client(root.appendingPathComponent("b"), server, rule)
            try await a.createAccount()
            try await link(b, to: a)
            await a.startSync()
            await b.startSync()
            let chat = try await a.createConversation(title: "cloak-canary-replayed")
            for text in ["one", "two", "three"] { try await Hostile.write(text, by: a, in: chat) }
            try await eventually("b has three") { await Hostile.texts(b, chat).count == 3 }
            let eventsBefore = try await b.recordedSecurityEvents()

            replaying.set(true)
            for text in ["four", "five"] { try await Hostile.write(text, by: a, in: chat) }
            try await eventually("b has five") { await converged([a, b], [chat]) }
            #expect(replays.withLock { $0 } >= 2)
            #expect(await Hostile.texts(b, chat) == ["one", "two", "three", "four", "five"])

            // After a restart the catch-up is replayed and reversed too.
            try await b.close()
            b = try Hostile.client(root.appendingPathComponent("b"), server, rule)
            let before = replays.withLock { $0 }
            await b.startSync()
            try await Hostile.write("six", by: a, in: chat)
            try await eventually("b has six after the restart") {
                guard replays.withLock({ $0 }) > before else { return false }
                return await converged([a, b], [chat])
            }
            #expect(await Hostile.texts(b, chat) == ["one", "two", "three", "four", "five", "six"])
            #expect(try await b.recordedSecurityEvents() == eventsBefore)
            #expect(await b.syncStatus().incidents.isEmpty)
            try await a.close()
            try await b.close()
        }
    }
}
