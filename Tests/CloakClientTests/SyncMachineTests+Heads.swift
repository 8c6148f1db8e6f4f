import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

extension SyncMachineTests {
    /// A core with one library edit sealed in its outbox, with `machine` started on it.
    func startedWithOneEdit(_ machine: inout SyncMachine) throws -> ClientCore {
        let core = try core()
        _ = try core.editLibrary { library, replica, now throws(LibraryEditError) in
            [try library.addConversation(ConversationID.random(using: core.random).libraryKey, replica: &replica, physicalMillis: now)]
        }
        _ = try core.flushDueBatches(force: true)
        _ = machine.handle(.start, core: core)
        return core
    }

    /// ADV-44 without a false alarm: the server reads its heads some time after a FetchHeads
    /// arrives, so an acknowledgement that reaches the device while the scan is out may belong
    /// to a commit the read did not see. Only what the device held when it asked can be
    /// missing from the answer; what it held then and the answer lacks is a rollback.
    @Test("ADV-44 an own change set acknowledged during a heads scan is no rollback; one acknowledged before is")
    func headsScanCountsOnlyWhatWasHeldWhenAsked() throws {
        var machine = SyncMachine(configuration: ClientConfiguration())
        let core = try startedWithOneEdit(&machine)

        // First connection: the push goes out, then the heads scan; the ack overtakes the heads.
        var frames = caughtUp(&machine, core, headCursor: 0)
        let push = try #require(frames.first { $0.body?.name == "push" })
        let heads = try #require(frames.first { $0.body?.name == "fetch_heads" })
        guard case .push(let pushed) = push.body else { return }
        _ = machine.handle(.frame(FrameCodec.encode(.pushAck(try accepted(pushed)), requestID: push.requestID)), core: core)
        #expect(try core.outboxChangeSets(limit: 10).isEmpty, "acknowledged")
        let raced = headsReply([], to: heads, &machine, core)
        #expect(!raced.events.contains { $0.kind == .serverRollback }, "the read may predate the commit")
        #expect(!raced.frames.contains { $0.body?.name == "push" }, "nothing re-uploaded")

        // Second connection: the change set was acknowledged before this scan was asked for,
        // and the answer lacks it: the server forgot it.
        _ = machine.handle(.disconnected, core: core)
        clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
        _ = machine.handle(.tick, core: core)
        frames = caughtUp(&machine, core, headCursor: 1)
        let again = try #require(frames.first { $0.body?.name == "fetch_heads" })
        let lost = headsReply([], to: again, &machine, core)
        #expect(lost.events.contains { $0.kind == .serverRollback && $0.detail.contains("lacks 1 change sets") })
    }

    /// ADV-44 ADV-13: a push whose connection ended before its answer may have been stored and
    /// fanned out by a server that then lost it (a restored backup). When the restored server
    /// refuses it with STALE_DEVICE_LOG, re-sealing it would sign a second change set at a
    /// position other devices hold (a fork, simulator seed 917): it goes back unchanged as a
    /// restore push. A refusal on the connection that first carried it still re-seals.
    @Test("ADV-44 ADV-13 a stale refusal of a push sent before unanswered restores the same bytes instead of re-sealing")
    func staleRefusalOfUnansweredPushRestoresTheSameBytes() throws {
        var machine = SyncMachine(configuration: ClientConfiguration())
        let core = try startedWithOneEdit(&machine)
        let (pushed, hash, again) = try pushedUnansweredThenAgain(&machine, core)
        // Second connection (the server restored meanwhile): the same bytes are refused as stale.
        guard case .push(let repushed) = again.body else { return }
        #expect(repushed.changeSets == pushed.changeSets)
        let frames = sent(machine.handle(.frame(FrameCodec.encode(.pushAck(stale(hash)), requestID: again.requestID)), core: core))
        let restore = try #require(frames.first { if case .push(let push) = $0.body { push.restore } else { false } })
        guard case .push(let restored) = restore.body else { return }
        #expect(restored.changeSets == pushed.changeSets, "the original bytes, not a new seal")
        #expect(!core.outbox.staleRefused.contains(hash), "not queued for re-sealing")
        #expect(try core.outboxChangeSets(limit: 10).map(\.hash) == [hash])

        // A change set first pushed on this connection and refused as stale was never stored:
        // that one is re-sealed (the original still goes back as a restore until stored).
        _ = machine.handle(.frame(FrameCodec.encode(.pushAck(Cloak_V1_PushAck()), requestID: restore.requestID)), core: core)
        _ = try core.editLibrary { library, replica, now throws(LibraryEditError) in
            [try library.addConversation(ConversationID.random(using: core.random).libraryKey, replica: &replica, physicalMillis: now)]
        }
        _ = try core.flushDueBatches(force: true)
        let fresh = try #require(try core.outboxChangeSets(limit: 10).last?.hash)
        clock.advance(ClientConfiguration().reconnectMinMillis * 5 + 1)
        let retried = try #require(sent(machine.handle(.tick, core: core)).first { $0.body?.name == "push" })
        _ = machine.handle(.frame(FrameCodec.encode(.pushAck(stale(hash, fresh)), requestID: retried.requestID)), core: core)
        #expect(core.outbox.staleRefused == [fresh])
    }

    /// ADV-44 ADV-13: a push that went unanswered may have been stored and fanned out before
    /// the server lost it; a later answer that only defers the change set (rate limited here; a
    /// lost log entry for an assistant, simulator seed 499) proves nothing about that copy. When
    /// the next push is refused as stale, the same bytes go back as a restore, not a re-seal.
    @Test("ADV-44 ADV-13 an unanswered push answered later with a retry, then refused as stale, is restored, not re-sealed")
    func unansweredPushStaysUncertainAfterARetryAnswer() throws {
        var machine = SyncMachine(configuration: ClientConfiguration())
        let core = try startedWithOneEdit(&machine)
        let (pushed, hash, again) = try pushedUnansweredThenAgain(&machine, core)
        // Second connection: rate limited, then refused as stale.
        var limited = stale(hash)
        limited.results[0].error = .rateLimited
        _ = machine.handle(.frame(FrameCodec.encode(.pushAck(limited), requestID: again.requestID)), core: core)
        clock.advance(ClientConfiguration().reconnectMinMillis * 5 + 1)
        let retried = try #require(sent(machine.handle(.tick, core: core)).first { $0.body?.name == "push" })
        let frames = sent(machine.handle(.frame(FrameCodec.encode(.pushAck(stale(hash)), requestID: retried.requestID)), core: core))
        let restore = try #require(frames.first { if case .push(let push) = $0.body { push.restore } else { false } })
        guard case .push(let restored) = restore.body else { return }
        #expect(restored.changeSets == pushed.changeSets, "the original bytes, not a new seal")
        #expect(!core.outbox.staleRefused.contains(hash), "not queued for re-sealing")
    }

    /// §19's limit, closed: the memory of an unanswered push outlives a restart. The device
    /// pushes, dies before the answer (a crash), reopens over its store, and the restored
    /// server refuses the same bytes as stale: they go back unchanged as a restore, never
    /// re-sealed into a second change set at a position other devices hold (seed 212).
    @Test("ADV-44 ADV-13 a push left unanswered by a restart is restored, not re-sealed, when refused as stale")
    func unansweredPushSurvivesARestart() throws {
        var machine = SyncMachine(configuration: ClientConfiguration())
        let before = try startedWithOneEdit(&machine)
        let first = try #require(caughtUp(&machine, before, headCursor: 0).first { $0.body?.name == "push" })
        guard case .push(let pushed) = first.body else { return }
        let hash = try ChangeSet(wire: Array(try #require(pushed.changeSets.first))).hash

        // The process dies with the push unanswered; the device reopens over the same store.
        let core = try core(reopening: before.store)
        var reopened = SyncMachine(configuration: ClientConfiguration())
        _ = reopened.handle(.start, core: core)
        let again = try #require(caughtUp(&reopened, core, headCursor: 0).first { $0.body?.name == "push" })
        guard case .push(let repushed) = again.body else { return }
        #expect(repushed.changeSets == pushed.changeSets)
        let frames = sent(reopened.handle(.frame(FrameCodec.encode(.pushAck(stale(hash)), requestID: again.requestID)), core: core))
        let restore = try #require(frames.first { if case .push(let push) = $0.body { push.restore } else { false } })
        guard case .push(let restored) = restore.body else { return }
        #expect(restored.changeSets == pushed.changeSets, "the original bytes, not a new seal")
        #expect(!core.outbox.staleRefused.contains(hash), "not queued for re-sealing")
    }

    /// A change set refused as stale on an answered push waits to be re-sealed; pushed again
    /// before that on a connection that ends unanswered, it may since have been stored. The
    /// next stale refusal restores it — and the earlier refusal must not re-seal it as well:
    /// the restored original and the new seal would fork its chain (seed 648).
    @Test("ADV-13 a change set that goes back as a restore leaves the re-seal queue of an earlier stale refusal")
    func restoringTakesAChangeSetOffTheResealQueue() throws {
        var machine = SyncMachine(configuration: ClientConfiguration())
        let core = try startedWithOneEdit(&machine)
        let first = try #require(caughtUp(&machine, core, headCursor: 0).first { $0.body?.name == "push" })
        guard case .push(let pushed) = first.body else { return }
        let hash = try ChangeSet(wire: Array(try #require(pushed.changeSets.first))).hash
        _ = machine.handle(.frame(FrameCodec.encode(.pushAck(stale(hash)), requestID: first.requestID)), core: core)
        #expect(core.outbox.staleRefused == [hash], "answered: never stored, to re-seal once the key is here")

        // Pushed again (the key has not come), and that connection ends before the answer.
        clock.advance(ClientConfiguration().reconnectMinMillis * 5 + 1)
        #expect(sent(machine.handle(.tick, core: core)).contains { $0.body?.name == "push" })
        _ = machine.handle(.disconnected, core: core)
        clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
        _ = machine.handle(.tick, core: core)
        let again = try #require(caughtUp(&machine, core, headCursor: 0).first { $0.body?.name == "push" })
        let frames = sent(machine.handle(.frame(FrameCodec.encode(.pushAck(stale(hash)), requestID: again.requestID)), core: core))
        #expect(frames.contains { if case .push(let push) = $0.body { push.restore } else { false } })
        #expect(core.outbox.staleRefused.isEmpty, "restored unchanged, so never re-sealed")
    }

    /// The restored server may have lost the chain before the refused change set too (own ones
    /// it had acknowledged): restoring that one alone is refused with GAP, and the next try
    /// would fail the same way (simulator seed 476). The restore carries the chain from its start.
    @Test("ADV-44 a restored unanswered push carries its chain's earlier change sets, which the server may have lost")
    func restoredUnansweredPushCarriesItsChain() throws {
        let core = try core()
        let addConversation = { () throws in
            _ = try core.editLibrary { library, replica, now throws(LibraryEditError) in
                [try library.addConversation(ConversationID.random(using: core.random).libraryKey, replica: &replica, physicalMillis: now)]
            }
            _ = try core.flushDueBatches(force: true)
        }
        try addConversation()
        var machine = SyncMachine(configuration: ClientConfiguration())
        _ = machine.handle(.start, core: core)
        let first = try #require(caughtUp(&machine, core, headCursor: 0).first { $0.body?.name == "push" })
        guard case .push(let acknowledged) = first.body else { return }
        let ack = try accepted(acknowledged)
        try addConversation()
        let second = try #require(sent(machine.handle(.frame(FrameCodec.encode(.pushAck(ack), requestID: first.requestID)), core: core))
            .first { $0.body?.name == "push" })
        guard case .push(let unanswered) = second.body else { return }
        _ = machine.handle(.disconnected, core: core)
        clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
        _ = machine.handle(.tick, core: core)

        let again = try #require(caughtUp(&machine, core, headCursor: 1).first { $0.body?.name == "push" })
        let refused = try ChangeSet(wire: Array(try #require(unanswered.changeSets.first))).hash
        let frames = sent(machine.handle(.frame(FrameCodec.encode(.pushAck(stale(refused)), requestID: again.requestID)), core: core))
        let restore = try #require(frames.first { if case .push(let push) = $0.body { push.restore } else { false } })
        guard case .push(let restored) = restore.body else { return }
        #expect(restored.changeSets == acknowledged.changeSets + unanswered.changeSets)
    }

    /// The server's acknowledgement of every change set of `push` (stored at cursor 1).
    func accepted(_ push: Cloak_V1_Push) throws -> Cloak_V1_PushAck {
        var ack = Cloak_V1_PushAck()
        ack.results = try push.changeSets.map { wire in
            var result = Cloak_V1_PushResult()
            result.hash = Data(try ChangeSet(wire: Array(wire)).hash.bytes)
            result.cursor = 1
            return result
        }
        return ack
    }

    /// The edit pushed on a first connection that ends before the answer; on the next one, the
    /// push that carries it again.
    func pushedUnansweredThenAgain(_ machine: inout SyncMachine, _ core: ClientCore) throws
        -> (pushed: Cloak_V1_Push, hash: ChangeSetHash, again: Cloak_V1_Frame)
    {
        let first = try #require(caughtUp(&machine, core, headCursor: 0).first { $0.body?.name == "push" })
        guard case .push(let pushed) = first.body else { throw ClientError.storage("no push") }
        let hash = try ChangeSet(wire: Array(try #require(pushed.changeSets.first))).hash
        _ = machine.handle(.disconnected, core: core)
        clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
        _ = machine.handle(.tick, core: core)
        let again = try #require(caughtUp(&machine, core, headCursor: 0).first { $0.body?.name == "push" })
        return (pushed, hash, again)
    }

    private func stale(_ hashes: ChangeSetHash...) -> Cloak_V1_PushAck {
        var ack = Cloak_V1_PushAck()
        ack.results = hashes.map { hash in
            var result = Cloak_V1_PushResult()
            result.hash = Data(hash.bytes)
            result.error = .staleDeviceLog
            return result
        }
        return ack
    }

    /// Connects, authenticates, subscribes and delivers an empty catch-up; the frames sent.
    func caughtUp(_ machine: inout SyncMachine, _ core: ClientCore, headCursor: UInt64) -> [Cloak_V1_Frame] {
        _ = machine.handle(.connected, core: core)
        let auth = sent(machine.handle(.frame(hello()), core: core))
        var result = Cloak_V1_AuthResult()
        result.headCursor = headCursor
        result.deviceLogLength = UInt64(core.log?.entries.count ?? 0)
        var frames = sent(machine.handle(.frame(FrameCodec.encode(.authResult(result), requestID: auth[0].requestID)), core: core))
        var deliver = Cloak_V1_Deliver()
        deliver.caughtUp = true
        let subscribe = frames.first { $0.body?.name == "subscribe" }?.requestID ?? 0
        frames += sent(machine.handle(.frame(FrameCodec.encode(.deliver(deliver), requestID: subscribe)), core: core))
        return frames
    }

    /// Answers a FetchHeads with `heads` in one page; the events surfaced and the frames sent.
    func headsReply(_ heads: [Cloak_V1_ChainHead], to request: Cloak_V1_Frame, _ machine: inout SyncMachine,
                            _ core: ClientCore) -> (events: [SecurityEvent], frames: [Cloak_V1_Frame])
    {
        var page = Cloak_V1_ChainHeads()
        page.heads = heads
        page.complete = true
        let effects = machine.handle(.frame(FrameCodec.encode(.chainHeads(page), requestID: request.requestID)), core: core)
        let events = effects.flatMap { effect -> [SecurityEvent] in if case .surface(let output) = effect { output.events } else { [] } }
        return (events, sent(effects))
    }
}
