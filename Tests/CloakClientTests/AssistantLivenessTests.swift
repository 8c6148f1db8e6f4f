import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// An assistant keeps syncing when the server forgets or refuses: what it cannot do (heads
/// scans, restore pushes, device-log appends; PROTOCOL.md §29) must not leave it retrying the
/// same refused request for ever (the simulator's livelocks).
@Suite("Assistants keep syncing after a server's loss (ADV-44, ADV-49)")
struct AssistantLivenessTests {
    @Test("ADV-44 an assistant whose acknowledged change sets the server lost pushes them again before its outbox")
    func lostOwnChangeSetsArePushedAgain() async throws {
        let world = try await AssistantTests().world(seed: 91)
        let question = try #require(await world.assistant.conversation(world.inScope)?.messages.last?.id)
        for text in ["Day one: the coast.", "Day two: the hills."] {
            let reply = try await world.assistant.beginMessage(in: world.inScope, parent: question, role: .assistant)
            try await world.assistant.streamText(text, into: reply, in: world.inScope)
            try await world.assistant.finishStreaming(in: world.inScope)
        }
        let (first, again, then) = try await world.assistant._pushesAfterGap()
        #expect(first.count >= 1 && !first.contains(1))
        // The server answered GAP to all of them (it lacks seq 1, which it had acknowledged):
        // the next push gives seq 1 back, and once it is stored the outbox follows.
        #expect(again == [1])
        #expect(then == first)
    }
}

extension CloakClient {
    /// The assistant's first change set acknowledged (and then lost by the server); the seqs of
    /// its next push (which the server refuses with GAP), of the push after that (which it
    /// accepts) and of the one that follows.
    func _pushesAfterGap() throws -> (first: [UInt64], again: [UInt64], then: [UInt64]) {
        let core = engine.core
        let outbox = try core.outboxChangeSets(limit: 100).sorted { $0.header.seq < $1.header.seq }
        try core.acknowledge([outbox[0].hash])
        var machine = SyncMachine(configuration: core.configuration)
        machine.phase = .syncing(caughtUp: true)
        let pushed = Self._pushed(machine.pushIfReady(core: core, now: core.now()))
        _ = Self._acknowledge(pushed, error: .gap, &machine, core)
        let again = Self._pushed(machine.pushIfReady(core: core, now: core.now() + 3_600_000))
        let then = Self._pushed(Self._acknowledge(again, error: .unspecified, &machine, core))
        return (pushed.map(\.header.seq), again.map(\.header.seq), then.map(\.header.seq))
    }

    static func _acknowledge(_ pushed: [ChangeSet], error: Cloak_V1_ErrorCode, _ machine: inout SyncMachine, _ core: ClientCore)
        -> [SyncEffect]
    {
        guard let inFlight = machine.pushInFlight else { return [] }
        var ack = Cloak_V1_PushAck()
        ack.results = pushed.map { changeSet in
            var result = Cloak_V1_PushResult()
            result.hash = Data(changeSet.hash.bytes)
            result.error = error
            result.cursor = error == .unspecified ? 7 : 0
            return result
        }
        return machine.handle(.frame(FrameCodec.encode(.pushAck(ack), requestID: inFlight.id)), core: core)
    }

    static func _pushed(_ effects: [SyncEffect]) -> [ChangeSet] {
        effects.flatMap { effect -> [ChangeSet] in
            guard case .send(let bytes) = effect, let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 22),
                case .push(let push)? = frame.body
            else { return [] }
            return push.changeSets.compactMap { try? ChangeSet(wire: Array($0)) }
        }
    }
}
