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

    /// Simulator large seed 6 (10 × 5 × 1,000): a device widened an assistant, the server
    /// stored the entry, and the device's connection ended before the key envelopes; another
    /// device removed it 1.5 s later. Its durable mark to seal them on its next connection
    /// ended with it, and no one else seals an epoch before a grant to the assistant: it held
    /// the widened conversation's history unreadable for good. The remover seals them.
    @Test("ADV-49 removing a device whose widening's envelopes never reached the server seals the assistant's history of its scope")
    func removingTheGranterSealsItsGrant() async throws {
        let world = try await AssistantTests().world(seed: 135)
        let invitation = await world.assistant.assistantInvitation()
        let (widened, _) = try await world.b._grantLocally(
            invitation, [world.outside], expiresAtMs: world.clock.nowMillis() + 3_600_000)
        for client in [world.a, world.assistant] { _ = try await client._receiveLog(widened.entries.map(\.wire)) }
        #expect(await texts(world.assistant, world.outside).isEmpty, "held for keys that never came")

        let (log, queued) = try await world.a._removeSealing(world.b.deviceID)
        let keys = try queued.filter { !$0.conversationID.isEmpty }.map { try ConversationKeyEnvelope(message: $0) }
        #expect(keys.allSatisfy { $0.recipient == world.assistant.deviceID })
        // Epoch 1 (before the removal) of the whole current scope, and the new epoch 2.
        let expected = [world.inScope, world.outside].flatMap { c in [1, 2].map { "\(c)/\($0)" } }
        #expect(Set(keys.map { "\($0.conversation)/\($0.epoch)" }) == Set(expected))
        _ = try await world.assistant._receiveLog(log)
        _ = try await world.assistant._receiveEnvelopes([], conversationKeys: keys)
        #expect(await texts(world.assistant, world.outside) == ["cloak-canary-outside-scope"])
    }

    /// The re-seal is only for a removed granter: removing a device that granted the assistant
    /// nothing seals it the new epoch's keys of its scope, as before.
    @Test("ADV-49 removing a device that granted nothing seals an assistant only the new epoch's keys")
    func removingAnotherDeviceSealsOnlyTheNewEpoch() async throws {
        let world = try await AssistantTests().world(seed: 136)
        let (_, queued) = try await world.a._removeSealing(world.b.deviceID)
        let keys = try queued.filter { !$0.conversationID.isEmpty }.map { try ConversationKeyEnvelope(message: $0) }
        #expect(keys.map { "\($0.conversation)/\($0.epoch)" } == ["\(world.inScope)/2"])
    }
}

extension CloakClient {
    /// Removes `device` here as the flow does: the new log and every envelope it queued.
    func _removeSealing(_ device: DeviceID) throws -> ([[UInt8]], [Cloak_V1_KeyEnvelope]) {
        let core = engine.core
        let (entry, key) = try core.prepareRemove(device)
        _ = try core.commitAppended(entry, newEpochKey: key)
        return (core.log!.entries.map(\.wire), try core.queuedEnvelopes().map(\.envelope))
    }

    /// The conversation-key envelopes to `assistant` among what this device re-seals to heal a
    /// rolled-back server.
    func _resealedConversationKeys(to assistant: DeviceID) throws -> [ConversationKeyEnvelope] {
        try engine.core.resealedEnvelopes().filter { $0.recipient == assistant }.map { try ConversationKeyEnvelope(message: $0.envelope) }
    }
}
