import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// A server restored from a backup older than a grant's key envelopes (PROTOCOL.md §29, §30):
/// members give the grant entry back with restore appends, and the conversation keys with the
/// envelopes they re-seal while healing — or the assistant never reads that history.
@Suite("Healing re-seals an assistant's conversation keys (ADV-44, ADV-49)")
struct AssistantResealTests {
    @Test("ADV-44 ADV-49 a widening's key envelopes lost by a restored server come back in the healing re-seal, and only for the current scope")
    func healingResealsTheAssistantsKeys() async throws {
        let world = try await AssistantTests().world(seed: 134)
        let assistant = world.assistant.deviceID
        // A widens the scope to `outside`; the server verifies the entry, then is restored from
        // a backup taken before the envelopes the grant sealed.
        let invitation = await world.assistant.assistantInvitation()
        let (log, _) = try await world.a._grantLocally(
            invitation, [world.inScope, world.outside], expiresAtMs: world.clock.nowMillis() + 3_600_000)
        _ = try await world.assistant._receiveLog(log.entries.map(\.wire))
        #expect(await texts(world.assistant, world.outside).isEmpty, "held for a key that never came")
        let resealed = try await world.a._resealedConversationKeys(to: assistant)
        // Without them it reads nothing of the widened conversation, ever: no one seals an
        // epoch before the grant to it again.
        #expect(Set(resealed.map(\.conversation)) == [world.inScope, world.outside])
        _ = try await world.assistant._receiveEnvelopes([], conversationKeys: resealed)
        #expect(await texts(world.assistant, world.outside) == ["cloak-canary-outside-scope"])
        #expect(try await world.assistant._recordedEvents().isEmpty)
        // Once `outside` is taken from its scope, its keys are re-sealed to no one but devices.
        _ = try await world.a._endAssistantLocally(assistant, removing: [world.outside])
        #expect(try await world.a._resealedConversationKeys(to: assistant).allSatisfy { $0.conversation == world.inScope })
        _ = try await world.a._endAssistantLocally(assistant, removing: nil)
        #expect(try await world.a._resealedConversationKeys(to: assistant).isEmpty, "a revoked assistant gets nothing")
    }
}

extension CloakClient {
    /// The conversation-key envelopes to `assistant` among what this device re-seals to heal a
    /// rolled-back server.
    func _resealedConversationKeys(to assistant: DeviceID) throws -> [ConversationKeyEnvelope] {
        try engine.core.resealedEnvelopes().filter { $0.recipient == assistant }.map { try ConversationKeyEnvelope(message: $0.envelope) }
    }
}
