import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// An assistant's push naming a device-log entry a restored server lost (PROTOCOL.md §29): it
/// waits for a reason to succeed — the served log moving, a new connection — and ends when the
/// served log forks away from the entry it names.
@Suite("Assistants wait for a lost log entry, not on a timer (ADV-44)")
struct AssistantLostLogTests {
    func refusedReply(seed: UInt64) async throws -> AssistantTests.World {
        let world = try await AssistantTests().world(seed: seed)
        let question = try #require(await world.assistant.conversation(world.inScope)?.messages.last?.id)
        let reply = try await world.assistant.beginMessage(in: world.inScope, parent: question, role: .assistant)
        try await world.assistant.streamText("Day one: the coast.", into: reply, in: world.inScope)
        try await world.assistant.finishStreaming(in: world.inScope)
        try await world.assistant._openIncident(.deviceLogRollback)
        return world
    }

    @Test("ADV-44 a push refused INVALID_FIELD during a log incident is pushed again when the served log moves, not every 0.5 s")
    func waitsForTheLogToMove() async throws {
        let world = try await refusedReply(seed: 120)
        let wires = await world.a._logWires()
        let trace = try await world.assistant._pushesWhileLogIsLost(served: [
            Array(wires.prefix(2)), Array(wires.prefix(2)), wires,
        ])
        #expect(trace.first > 0)
        // Without the wait it went again every half second until a member gave the entry back
        // (and for ever if none did): nothing an hour later, nor after the same short log again.
        #expect(trace.timerPushes == 0)
        #expect(trace.afterServed == [0, 0, trace.first])
        #expect(trace.retryAt == 0, "no timer: the driver is not woken for it")
    }

    @Test("ADV-44 a push waiting for a lost log entry fetches the log as soon as the server says its log moved")
    func noticeOfAMovedLogFetchesIt() async throws {
        let world = try await refusedReply(seed: 123)
        // The server's log grew from 2 to 3 entries (a member gave one back): no longer than the
        // assistant's own, which is why the notice was not looked at (a 30 s wait for the next
        // look, long enough to lose the connection and the push with it: CI seed 10040).
        #expect(try await world.assistant._logFetchesAfterNotice(length: 3) == 1)
    }

    @Test("ADV-44 an assistant's own chains given back after a rollback are queued again on a new connection until stored")
    func givenBackChainsSurviveAReconnect() async throws {
        let world = try await refusedReply(seed: 124)
        let pushes = try await world.assistant._restorePushesAcrossReconnect()
        #expect(pushes.first > 0)
        // The rollback counted as healed once they were queued: the connection dropped before
        // they were stored, and the restored server never got them back (CI seed 10040).
        #expect(pushes.second == pushes.first)
    }

    @Test("ADV-44 a push waiting for a lost log entry goes again on a new connection")
    func newConnectionTriesAgain() async throws {
        let world = try await refusedReply(seed: 121)
        let trace = try await world.assistant._pushesWhileLogIsLost(served: [], reconnect: true)
        #expect(trace.first > 0 && trace.timerPushes == 0)
        #expect(trace.afterReconnect == trace.first)
    }

    @Test("ADV-44 a push naming a log entry the served log forked away is dropped with a deviceLogFork event")
    func forkedAwayEntryIsDropped() async throws {
        let world = try await refusedReply(seed: 122)
        let index = await world.assistant._logWires().count - 1
        let trace = try await world.assistant._pushesWhileLogIsLost(served: [], forkedAt: UInt64(index))
        #expect(trace.first > 0)
        #expect(trace.left == 0, "never stored anywhere: it would wait for ever")
        #expect(trace.events.contains { $0.kind == .deviceLogFork && $0.seq == UInt64(index) })
    }
}

extension CloakClient {
    /// The assistant's outbox pushed and refused INVALID_FIELD (the server stating a log of 2
    /// entries), then an AccountNotice of a log of `length`: the device-log fetches it sends.
    func _logFetchesAfterNotice(length: UInt64) throws -> Int {
        let core = engine.core
        var machine = SyncMachine(configuration: core.configuration)
        machine.phase = .syncing(caughtUp: true)
        machine.healing.serverLogLength = 2
        let pushed = Self._pushed(machine.pushIfReady(core: core, now: core.now()))
        _ = Self._acknowledge(pushed, error: .invalidField, &machine, core)
        var notice = Cloak_V1_AccountNotice()
        notice.deviceLogLength = length
        let sent = Self._frames(machine.handle(.frame(FrameCodec.encode(.accountNotice(notice), requestID: 0)), core: core))
        return sent.filter { if case .fetchDeviceLog? = $0.body { true } else { false } }.count
    }

    /// Everything acknowledged, a connection that found the server rolled back gives back the
    /// assistant's own chains; it drops before they are stored: the change sets the first and
    /// the next connection push.
    func _restorePushesAcrossReconnect() throws -> (first: Int, second: Int) {
        let core = engine.core
        try core.acknowledge(try core.outboxChangeSets(limit: 100).map(\.hash))
        var machine = SyncMachine(configuration: core.configuration)
        var counts: [Int] = []
        machine.healing.rollback = true
        for _ in 0..<2 {
            machine.phase = .syncing(caughtUp: true)
            var effects = machine.startHeadsScan(core: core, now: core.now())
            effects += machine.continueHealing(core: core, now: core.now())
            effects += machine.pushIfReady(core: core, now: core.now())
            counts.append(Self._pushed(effects).count)
            machine.resetConnectionState()
        }
        return (counts[0], counts[1])
    }

    /// The assistant's outbox pushed and refused INVALID_FIELD (an open log incident, the server
    /// stating a log of 2 entries): what a push an hour later sends, what goes after each served
    /// log of `served` (or a new connection, or a fork at `forkedAt`), the push retry time set,
    /// what is left unacknowledged and the events surfaced.
    func _pushesWhileLogIsLost(served: [[[UInt8]]], reconnect: Bool = false, forkedAt: UInt64? = nil) throws
        -> (first: Int, timerPushes: Int, afterServed: [Int], afterReconnect: Int, retryAt: UInt64, left: Int,
            events: [SecurityEvent])
    {
        let core = engine.core
        let now = core.now()
        var machine = SyncMachine(configuration: core.configuration)
        machine.phase = .syncing(caughtUp: true)
        machine.healing.serverLogLength = 2
        let pushed = Self._pushed(machine.pushIfReady(core: core, now: now))
        _ = Self._acknowledge(pushed, error: .invalidField, &machine, core)
        let retryAt = machine.pushRetryAt
        let timer = Self._pushed(machine.pushIfReady(core: core, now: now + 3_600_000)).count
        var events: [SecurityEvent] = []
        var afterServed: [Int] = []
        for wires in served {
            var reply = Cloak_V1_DeviceLogEntries()
            reply.entries = wires.map { Data($0) }
            reply.logLength = UInt64(wires.count)
            let effects = machine.handle(.frame(FrameCodec.encode(.deviceLogEntries(reply), requestID: 900)), core: core)
            let again = Self._pushed(effects)
            afterServed.append(again.count)
            if !again.isEmpty { _ = Self._acknowledge(again, error: .unspecified, &machine, core) }
        }
        if let forkedAt {
            for effect in machine.servedLogMoved(to: 2, forkedAt: forkedAt, core: core, now: now) {
                if case .surface(let output) = effect { events += output.events }
            }
        }
        var afterReconnect = 0
        if reconnect {
            machine.resetConnectionState()
            machine.phase = .syncing(caughtUp: true)
            afterReconnect = Self._pushed(machine.pushIfReady(core: core, now: now + 3_600_000)).count
        }
        let left = try core.outboxChangeSets(limit: 100).count
        return (pushed.count, timer, afterServed, afterReconnect, retryAt, left, events)
    }
}
