import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// A conversation taken from an assistant's scope and granted to it again (PROTOCOL.md §29):
/// what raced the restriction leaves no hole in its chain that members would wait on.
@Suite("Assistants granted a conversation again (ADV-45, ADV-49)")
struct AssistantRegrantTests {
    @Test("ADV-45 ADV-49 a push refused OUT_OF_SCOPE gives its chain position back: after a new grant no member waits for it",
          arguments: [false, true])
    func racedPushLeavesNoGap(logFirst: Bool) async throws {
        let helper = AssistantTests()
        let world = try await helper.world(seed: logFirst ? 111 : 110, scopeBoth: true)
        try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "first")
        _ = try await helper.deliver(world, from: world.assistant)
        // Its next reply is on its way when A takes the conversation from its scope: the server
        // refuses it OUT_OF_SCOPE and stores none of it (the cut-off names "first").
        try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "cloak-canary-raced")
        let (log, queued) = try await world.a._endAssistantLocally(world.assistant.deviceID, removing: [world.inScope])
        let forAssistant = try queued.filter { !$0.conversationID.isEmpty }.map { try ConversationKeyEnvelope(message: $0) }
        _ = try await world.b._receiveLog(log)
        _ = try await world.b._receiveEnvelopes(queued.filter { $0.conversationID.isEmpty }.map { try KeyEnvelope(message: $0) })
        if logFirst { _ = try await world.assistant._receiveLog(log) }
        // Told first, its client drops the reply unsent; else the server refuses it.
        let refusal = try await world.assistant._pushRefused(with: .outOfScope)
        #expect(refusal.pushed == (logFirst ? 0 : 1) && refusal.events.isEmpty)
        if !logFirst { _ = try await world.assistant._receiveLog(log) }
        _ = try await world.assistant._receiveEnvelopes([], conversationKeys: forAssistant)
        // A grants it the conversation again; it answers there.
        let invitation = await world.assistant.assistantInvitation()
        let (granted, envelopes) = try await world.a._grantLocally(
            invitation, [world.inScope], expiresAtMs: world.clock.nowMillis() + 3_600_000)
        _ = try await world.b._receiveLog(granted.entries.map(\.wire))
        _ = try await world.assistant._receiveLog(granted.entries.map(\.wire))
        _ = try await world.assistant._receiveEnvelopes([], conversationKeys: envelopes)
        try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "after the new grant")
        let events = try await helper.deliver(world, from: world.assistant)
        #expect(events.allSatisfy { $0.isEmpty })
        for device in [world.a, world.b] {
            // Without the fix its next change set named the refused one as predecessor: held
            // for a gap no server can fill, and reported withheld.
            #expect(await device._heldConversations().isEmpty)
            #expect(await device.allMessageTexts(world.inScope).contains("after the new grant"))
            #expect(await !device.allMessageTexts(world.inScope).contains("cloak-canary-raced"))
        }
        #expect(await world.assistant.allMessageTexts(world.inScope).contains("after the new grant"))
        #expect(await !world.assistant.allMessageTexts(world.inScope).contains("cloak-canary-raced"))
        #expect(await world.a.stateHash(of: world.inScope) == (await world.assistant.stateHash(of: world.inScope)))
        // Its own unacknowledged reply dropped by the cut-off is the race every honest assistant
        // can hit: no alarm on the assistant either (it raised beyondRemovalCutoff about itself).
        #expect(try await world.assistant._recordedEvents().isEmpty)
    }

    @Test("ADV-45 ADV-49 a push within the restriction's cut-off, stored before its answer was lost, is acknowledged once refused OUT_OF_SCOPE after the log: no member loses it, no event")
    func storedPushWithinTheCutoffIsAcknowledged() async throws {
        let world = try await AssistantTests().world(seed: 112, scopeBoth: true)
        try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "cloak-canary-stored")
        // The server stored and fanned it out; the answer to the push was lost, so the
        // assistant's outbox still holds it.
        for wire in try await world.assistant._outboxWires() { await world.relay.append(wire) }
        for device in [world.a, world.b] { #expect(try await world.relay.deliverAll(to: device).events.isEmpty) }
        // A restricts the assistant: its signed cut-off names that change set.
        let (log, queued) = try await world.a._endAssistantLocally(world.assistant.deviceID, removing: [world.inScope])
        #expect(try await world.b._receiveLog(log).events.isEmpty)
        let forB = try queued.filter { $0.conversationID.isEmpty }.map { try KeyEnvelope(message: $0) }
        _ = try await world.b._receiveEnvelopes(forB.filter { $0.recipient == world.b.deviceID })
        // Pushed again before the log arrives: the server refuses it OUT_OF_SCOPE; its verified
        // log still has the conversation, so it keeps the change set and waits for the log.
        let early = try await world.assistant._pushRefused(with: .outOfScope)
        #expect(early.pushed == 1 && early.events.isEmpty && early.left == 1)
        #expect(try await world.assistant._receiveLog(log).events.isEmpty)
        // The log's cut-off keeps it (it lies within): refused again, it is acknowledged.
        let late = try await world.assistant._pushRefused(with: .outOfScope)
        #expect(late.pushed == 1 && late.events.isEmpty)
        #expect(late.left == 0 && late.pushedAgain == 0, "without the rule it waits for a log it already has, for ever")
        for client in [world.a, world.b, world.assistant] {
            #expect(await client.allMessageTexts(world.inScope).contains("cloak-canary-stored"))
        }
        #expect(try await world.assistant._recordedEvents().isEmpty)
        for device in [world.a, world.b] {
            #expect(try await device._recordedEvents().allSatisfy { $0.kind == .deviceAdded }, "only the account's own set-up")
        }
    }
}

extension CloakClient {
    /// The outbox's change sets as pushed, left unacknowledged (a push whose answer was lost).
    func _outboxWires() throws -> [[UInt8]] {
        try engine.core.outboxChangeSets(limit: 100).map(\.wire)
    }
}
