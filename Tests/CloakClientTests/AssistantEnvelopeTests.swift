import CloakProtocol
import Testing

@_spi(Simulation) @testable import CloakClient

/// Key envelopes a device queued for an assistant go to the server only while the assistant
/// may still read that conversation: the server refuses the rest `OUT_OF_SCOPE`, and with them
/// the whole batch (ADV-49).
@Suite("Assistants: queued key envelopes (ADV-49)")
struct AssistantEnvelopeTests {
    @Test("ADV-49 envelopes queued for an assistant's conversation a restriction took are dropped, so the rest still go")
    func queuedEnvelopesOutsideTheScopeAreDropped() async throws {
        let world = try await AssistantTests().world(seed: 83, scopeBoth: true)
        let assistantID = world.assistant.deviceID
        let aID = world.a.deviceID
        // A removes B without reaching the server: epoch 2's keys of both conversations wait
        // in the queue for the assistant. Then A restricts the assistant to `inScope`.
        try await world.a._removeQueued(world.b.deviceID)
        let queuedBefore = try await world.a._queuedAssistantConversations(assistantID)
        #expect(queuedBefore.contains(world.outside) && queuedBefore.contains(world.inScope))
        try await world.a._restrictQueued(assistantID, removing: [world.outside])

        let sent = try await world.a._envelopesToSend()
        let toAssistant = sent.filter { $0.recipient == assistantID }
        #expect(!toAssistant.isEmpty)
        #expect(toAssistant.allSatisfy { $0.conversation == world.inScope })
        #expect(sent.contains { $0.recipient == aID }, "A's own epoch envelope still goes")
        // Dropped from the queue, not only from this batch.
        #expect(try await world.a._queuedAssistantConversations(assistantID).allSatisfy { $0 == world.inScope })
    }
}

extension CloakClient {
    /// Restricts an assistant at the core level, leaving the new envelopes queued.
    func _restrictQueued(_ id: DeviceID, removing: [ConversationID]) throws {
        let (entry, key) = try engine.core.prepareEndAssistant(id, removing: removing, reason: .revoked)
        _ = try engine.core.commitAppended(entry, newEpochKey: key)
    }

    /// The conversations of the envelopes queued for `assistant`.
    func _queuedAssistantConversations(_ assistant: DeviceID) throws -> [ConversationID] {
        try engine.core.queuedEnvelopes().filter { $0.envelope.recipient.elementsEqual(assistant.bytes) }.map {
            try ConversationID(validating: $0.envelope.conversationID, field: "conversation")
        }
    }

    /// What the sync machine would send now: each envelope's recipient and conversation.
    func _envelopesToSend() throws -> [(recipient: DeviceID, conversation: ConversationID?)] {
        try engine.core.envelopesToSend().map { item in
            let conversation = item.envelope.conversationID.isEmpty
                ? nil : try ConversationID(validating: item.envelope.conversationID, field: "conversation")
            return (try DeviceID(validating: item.envelope.recipient, field: "recipient"), conversation)
        }
    }
}
