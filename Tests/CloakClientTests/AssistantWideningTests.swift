import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// A grant that widens an assistant's scope (PROTOCOL.md §29) ends with the added
/// conversations' history even when the app restarts in the middle, or when a snapshot is
/// served before the conversation's key.
@Suite("Assistants fetch a widened scope's history across restarts (ADV-45, ADV-49)")
struct AssistantWideningTests {
    @Test("ADV-49 a widening verified just before a restart is fetched on the next connection, and only until it completes")
    func wideningSurvivesARestart() async throws {
        let world = try await AssistantTests().world(seed: 130)
        let (log, _) = try await widened(world)
        // Verified and stored; the app stops before it fetches anything.
        _ = try await world.assistant._receiveLog(log.entries.map(\.wire))
        let first = try await world.assistant._connectAfterRestart(completing: true)
        // Without durable state the restarted assistant never fetched the added conversation's
        // history: its cursor was for the old scope.
        #expect(first.widened == [world.outside])
        #expect(first.resubscribedFrom == 0)
        let second = try await world.assistant._connectAfterRestart(completing: false)
        #expect(second.widened.isEmpty, "its catch-up from 0 completed: nothing left to fetch")
    }

    @Test("ADV-49 a widening interrupted before its catch-up from 0 completes is fetched again after a restart")
    func interruptedCatchUpIsDoneAgain() async throws {
        let world = try await AssistantTests().world(seed: 132)
        let (log, _) = try await widened(world)
        _ = try await world.assistant._receiveLog(log.entries.map(\.wire))
        _ = try await world.assistant._connectAfterRestart(completing: false)
        #expect(try await world.assistant._connectAfterRestart(completing: false).widened == [world.outside])
    }

    @Test("ADV-45 ADV-49 a widened conversation's snapshot served before its key is kept, across a restart, until the key comes")
    func snapshotBeforeKeyIsUsedOnceTheKeyComes() async throws {
        let world = try await AssistantTests().world(seed: 131)
        let snapshot = try #require(try await world.a._snapshotNow(of: world.outside))
        let (log, envelopes) = try await widened(world)
        _ = try await world.assistant._receiveLog(log.entries.map(\.wire))
        let texts = try await world.assistant._snapshotThenKeyAfterRestart(snapshot, envelopes, conversation: world.outside)
        #expect(texts.before.isEmpty, "no key yet: nothing readable")
        // Kept only as lineage, the history it covers (the server may have dropped those change
        // sets) was lost for good once the key came.
        #expect(texts.after == ["cloak-canary-outside-scope"])
    }

    @Test("ADV-49 a widening whose snapshots the server refuses is asked for again on the same connection after a pause, and ends with the history")
    func refusedWideningIsAskedAgain() async throws {
        let world = try await AssistantTests().world(seed: 133)
        let snapshot = try #require(try await world.a._snapshotNow(of: world.outside))
        let (log, envelopes) = try await widened(world)
        let run = try await world.assistant._wideningRefused(
            log.entries.map(\.wire), then: snapshot, keys: envelopes, conversation: world.outside, clock: world.clock)
        #expect(run.asked == [world.outside])
        #expect(run.resubscribedFrom == 0, "the added conversation's change sets still come")
        #expect(run.beforeRetry.isEmpty, "the server compacted what the snapshot covers: nothing of it came")
        // Without the retry the widening waits for another log or connection, however long
        // this one lasts.
        #expect(run.askedAgain == [world.outside])
        #expect(run.after == ["cloak-canary-outside-scope"])
        #expect(try await world.assistant._recordedEvents().isEmpty)
    }

    /// A widens the assistant's scope to `outside` too (here, without a server): the new log and
    /// the keys the grant seals.
    private func widened(_ world: AssistantTests.World) async throws -> (DeviceLog, [ConversationKeyEnvelope]) {
        let invitation = await world.assistant.assistantInvitation()
        return try await world.a._grantLocally(
            invitation, [world.inScope, world.outside], expiresAtMs: world.clock.nowMillis() + 3_600_000)
    }
}

extension CloakClient {
    /// On a live connection the widening log `wires` arrives; the server refuses its
    /// FetchSnapshots (INTERNAL), the catch-up from cursor 0 that follows completes, the keys
    /// `keys` arrive; then the retry pause passes and `snapshot` answers whatever is asked.
    /// The conversations asked first, the Subscribe's cursor, the texts of `conversation`
    /// before the pause, the conversations asked again and the texts at the end.
    func _wideningRefused(
        _ wires: [[UInt8]], then snapshot: Snapshot, keys: [ConversationKeyEnvelope], conversation: ConversationID,
        clock: ManualClock
    ) throws -> (asked: [ConversationID], resubscribedFrom: UInt64?, beforeRetry: [String], askedAgain: [ConversationID], after: [String]) {
        // The server compacted the conversation's change sets into the snapshot: the copies
        // this assistant held (a replay outside its scope) are not there either (the core is
        // opened again over its store without them).
        let covered = engine.core.ledger.held.values.map(\.changeSet).filter { $0.header.conversation == conversation }
        try engine.core.store.write { tx in
            for changeSet in covered { try tx.deleteHeld(hash: changeSet.hash) }
        }
        let core = try ClientCore(store: engine.core.store, environment: engine.core.environment)
        let texts = {
            core.documents.conversations[conversation].map { document in document.children(of: nil).compactMap { document.text(of: $0) } } ?? []
        }
        var machine = SyncMachine(configuration: core.configuration)
        machine.phase = .syncing(caughtUp: true)
        var served = Cloak_V1_DeviceLogEntries()
        served.entries = wires.map { Data($0) }
        served.logLength = UInt64(wires.count)
        let sent = Self._frames(machine.handle(.frame(FrameCodec.encode(.deviceLogEntries(served), requestID: 900)), core: core))
        let asked = Self._snapshotsAsked(sent)
        guard let fetch = asked.frame else { return ([], nil, [], [], []) }
        let refused = Self._frames(machine.handle(.frame(FrameCodec.encodeError(.internalError, requestID: fetch.requestID)), core: core))
        let subscribe = refused.first { if case .subscribe? = $0.body { true } else { false } }
        var resubscribedFrom: UInt64?
        if let subscribe, case .subscribe(let request)? = subscribe.body {
            resubscribedFrom = request.afterCursor
            var caughtUp = Cloak_V1_Deliver()
            caughtUp.caughtUp = true
            _ = machine.handle(.frame(FrameCodec.encode(.deliver(caughtUp), requestID: subscribe.requestID)), core: core)
        }
        _ = try core.receiveConversationKeys(keys)
        let beforeRetry = texts()
        clock.advance(core.configuration.reconnectMinMillis * 5)
        let again = Self._snapshotsAsked(Self._frames(machine.handle(.tick, core: core)))
        if let retry = again.frame {
            var list = Cloak_V1_SnapshotList()
            list.snapshots = [snapshot.message]
            _ = machine.handle(.frame(FrameCodec.encode(.snapshots(list), requestID: retry.requestID)), core: core)
        }
        return (asked.conversations, resubscribedFrom, beforeRetry, again.conversations, texts())
    }

    /// The FetchSnapshots among `frames`, and the conversations it names.
    static func _snapshotsAsked(_ frames: [Cloak_V1_Frame]) -> (frame: Cloak_V1_Frame?, conversations: [ConversationID]) {
        guard let frame = frames.first(where: { if case .fetchSnapshots? = $0.body { true } else { false } }),
            case .fetchSnapshots(let request)? = frame.body
        else { return (nil, []) }
        return (frame, request.conversationIds.compactMap { try? ConversationID(validating: $0, field: "id") })
    }
}

extension CloakClient {
    /// A device's snapshot of `conversation` now, as the server stores it.
    func _snapshotNow(of conversation: ConversationID) throws -> Snapshot? {
        let core = engine.core
        core.documents.sinceSnapshot[conversation] = core.configuration.snapshotEvery
        let snapshot = try core.snapshotIfDue()
        try core.snapshotStored()
        return snapshot
    }

    /// The app restarts (a fresh core over the same store, a fresh machine) and connects: the
    /// conversations of the widening FetchSnapshots it sends, and the cursor of the Subscribe
    /// after its (empty) reply; with `completing`, that catch-up then completes.
    func _connectAfterRestart(completing: Bool) throws -> (widened: [ConversationID], resubscribedFrom: UInt64?) {
        let core = try ClientCore(store: engine.core.store, environment: engine.core.environment)
        var machine = SyncMachine(configuration: core.configuration)
        machine.phase = .authenticating
        var result = Cloak_V1_AuthResult()
        result.deviceLogLength = UInt64(core.log?.entries.count ?? 0)
        result.headCursor = try core.store.read { tx in try Ledger.cursor(tx) }
        let sent = Self._frames(machine.handle(.frame(FrameCodec.encode(.authResult(result), requestID: 1)), core: core))
        guard let fetch = sent.first(where: { if case .fetchSnapshots? = $0.body { true } else { false } }),
            case .fetchSnapshots(let request)? = fetch.body
        else { return ([], nil) }
        let widened = request.conversationIds.compactMap { try? ConversationID(validating: $0, field: "id") }
        let reply = FrameCodec.encode(.snapshots(Cloak_V1_SnapshotList()), requestID: fetch.requestID)
        let next = Self._frames(machine.handle(.frame(reply), core: core))
        guard let subscribe = next.first(where: { if case .subscribe? = $0.body { true } else { false } }),
            case .subscribe(let request)? = subscribe.body
        else { return (widened, nil) }
        if completing {
            var caughtUp = Cloak_V1_Deliver()
            caughtUp.caughtUp = true
            _ = machine.handle(.frame(FrameCodec.encode(.deliver(caughtUp), requestID: subscribe.requestID)), core: core)
        }
        return (widened, request.afterCursor)
    }

    /// `snapshot` served before its key, the app restarted, then the keys `envelopes` arrive:
    /// the texts of `conversation` before and after. The server dropped the change sets the
    /// snapshot covers: the copies this assistant held (a replay outside its scope) go too.
    func _snapshotThenKeyAfterRestart(
        _ snapshot: Snapshot, _ envelopes: [ConversationKeyEnvelope], conversation: ConversationID
    ) throws -> (before: [String], after: [String]) {
        let covered = engine.core.ledger.held.values.map(\.changeSet).filter { $0.header.conversation == conversation }
        try engine.core.store.write { tx in
            for changeSet in covered { try tx.deleteHeld(hash: changeSet.hash) }
        }
        _ = try engine.core.loadSnapshots([snapshot])
        let before = allMessageTexts(conversation)
        let core = try ClientCore(store: engine.core.store, environment: engine.core.environment)
        _ = try core.receiveConversationKeys(envelopes)
        guard let document = core.documents.conversations[conversation] else { return (before, []) }
        return (before, document.children(of: nil).compactMap { document.text(of: $0) })
    }

    static func _frames(_ effects: [SyncEffect]) -> [Cloak_V1_Frame] {
        effects.compactMap { effect -> Cloak_V1_Frame? in
            guard case .send(let bytes) = effect else { return nil }
            return try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 22)
        }
    }
}
