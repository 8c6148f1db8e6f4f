import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// ADV-49: an AI assistant is a member of exactly the conversations it was granted, with the
/// rights of an assistant, until its expiry or revocation. Every receiver checks; a hostile
/// assistant (its client's own checks turned off) gets nothing outside that accepted, and a
/// revoked one decrypts nothing written later.
@Suite("Assistants: scope, rights, lifetime, keys (ADV-49)")
struct AssistantTests {
    /// Two devices with two conversations (`inScope` and `outside`) both know, and an assistant
    /// granted `inScope` (or `scope`) until `expiresIn` ms from now, joined with its keys.
    struct World {
        let a: CloakClient
        let b: CloakClient
        let assistant: CloakClient
        let inScope: ConversationID
        let outside: ConversationID
        let relay: Relay
        let clock: ManualClock
    }

    func world(seed: UInt64, scopeBoth: Bool = false, expiresIn: UInt64 = 3_600_000) async throws -> World {
        let clock = ManualClock()
        let devices = try await makeAccount(devices: 2, seed: seed, clock: clock)
        let (a, b) = (devices[0], devices[1])
        let relay = Relay()
        let inScope = try await a.createConversation(title: "trip")
        let outside = try await a.createConversation(title: "cloak-canary-private")
        try await a.appendMessage(to: inScope, role: .user, text: "plan the trip")
        try await a.appendMessage(to: outside, role: .user, text: "cloak-canary-outside-scope")
        try await relay.collect(from: a)
        _ = try await relay.deliverAll(to: b)
        let assistant = try makeClient(seed: seed &+ 7_777, clock: clock)
        let invitation = await assistant.assistantInvitation()
        let scope = scopeBoth ? [inScope, outside] : [inScope]
        let (log, envelopes) = try await a._grantLocally(invitation, scope, expiresAtMs: clock.nowMillis() + expiresIn)
        try await assistant._joinAsAssistant(log: log, envelopes: envelopes)
        _ = try await b._receiveLog(log.entries.map(\.wire))
        _ = try await relay.deliverAll(to: assistant)
        return World(a: a, b: b, assistant: assistant, inScope: inScope, outside: outside, relay: relay, clock: clock)
    }

    /// Sends what `from` sealed to both devices; returns their events.
    func deliver(_ world: World, from sender: CloakClient) async throws -> [[SecurityEvent]] {
        try await world.relay.collect(from: sender)
        var events: [[SecurityEvent]] = []
        for device in [world.a, world.b] { events.append(try await world.relay.deliverAll(to: device).events) }
        return events
    }

    @Test("an assistant reads its conversation, answers as assistant, and every device shows it and who can read")
    func honestAssistant() async throws {
        let world = try await world(seed: 61)
        #expect(await texts(world.assistant, world.inScope) == ["plan the trip"])
        #expect(await world.assistant.conversation(world.outside)?.messages.isEmpty ?? true)
        let question = try #require(await world.assistant.conversation(world.inScope)?.messages.last?.id)
        let reply = try await world.assistant.beginMessage(in: world.inScope, parent: question, role: .assistant)
        try await world.assistant.streamText("Day one: ", into: reply, in: world.inScope)
        try await world.assistant.streamText("the coast.", into: reply, in: world.inScope)
        try await world.assistant.finishStreaming(in: world.inScope)
        let events = try await deliver(world, from: world.assistant)
        #expect(events.allSatisfy { $0.isEmpty })
        for device in [world.a, world.b] {
            #expect(await texts(device, world.inScope) == ["plan the trip", "Day one: the coast."])
            #expect(await device.conversation(world.inScope)?.assistants.map(\.id) == [world.assistant.deviceID])
            #expect(await device.conversation(world.outside)?.assistants.isEmpty == true)
        }
        // Its own client refuses what receivers would refuse.
        await #expect(throws: ClientError.self) {
            try await world.assistant.appendMessage(to: world.inScope, role: .user, text: "as the user")
        }
    }

    @Test("ADV-49 an assistant's change set in a conversation outside its scope is refused with an event on every device")
    func outsideScope() async throws {
        let world = try await world(seed: 62)
        // Hostile: its client skips its checks, and it got the other conversation's key somehow.
        let leaked = try #require(await world.a._conversationKey(world.outside, epoch: 1))
        try await world.assistant._playHostile(extraKey: (world.outside, 1, leaked))
        _ = try await world.assistant._receive(await world.relay.items)  // it reads the held change sets
        #expect(await texts(world.assistant, world.outside) == ["cloak-canary-outside-scope"], "the leak worked")
        try await world.assistant.appendMessage(to: world.outside, role: .assistant, text: "cloak-canary-intruder")
        for events in try await deliver(world, from: world.assistant) {
            #expect(events.contains { $0.kind == .assistantOutOfScope && $0.device == world.assistant.deviceID })
        }
        for device in [world.a, world.b] {
            #expect(await texts(device, world.outside) == ["cloak-canary-outside-scope"])
        }
    }

    @Test("ADV-49 an assistant writing as the user, or into another's message, is refused with an event on every device",
          arguments: [false, true])
    func outsideRights(intoAnothersMessage: Bool) async throws {
        let world = try await world(seed: intoAnothersMessage ? 68 : 63)
        try await world.assistant._playHostile()
        if intoAnothersMessage {
            let question = try #require(await world.assistant.conversation(world.inScope)?.messages.first?.id)
            try await world.assistant.streamText(" and ignore safety", into: question, in: world.inScope)
            try await world.assistant.finishStreaming(in: world.inScope)
        } else {
            try await world.assistant.appendMessage(to: world.inScope, role: .user, text: "pretend user")
        }
        for events in try await deliver(world, from: world.assistant) {
            #expect(events.contains { $0.kind == .assistantNotPermitted && $0.device == world.assistant.deviceID })
        }
        for device in [world.a, world.b] {
            #expect(await texts(device, world.inScope) == ["plan the trip"])
        }
        #expect(await world.a.stateHash(of: world.inScope) == (await world.b.stateHash(of: world.inScope)))
    }

    @Test("ADV-49 an assistant's operations stamped after its expiry are refused; devices see the expiry")
    func afterExpiry() async throws {
        let world = try await world(seed: 64, expiresIn: 60_000)
        #expect(await world.a._expiredAssistants().isEmpty)
        world.clock.advance(120_000)
        #expect(await world.a._expiredAssistants() == [world.assistant.deviceID])
        #expect(await world.a.conversation(world.inScope)?.assistants.isEmpty == true, "expired: no longer reads")
        try await world.assistant._playHostile()
        try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "too late")
        for events in try await deliver(world, from: world.assistant) {
            #expect(events.contains { $0.kind == .assistantExpired && $0.device == world.assistant.deviceID })
        }
        #expect(await texts(world.b, world.inScope) == ["plan the trip"])
    }

    @Test("ADV-49 after revocation: later change sets of the assistant are refused, and it decrypts nothing written later")
    func afterRevocation() async throws {
        let world = try await world(seed: 65)
        try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "before")
        _ = try await deliver(world, from: world.assistant)
        let (log, queued) = try await world.a._endAssistantLocally(world.assistant.deviceID, removing: nil)
        #expect(queued.allSatisfy { $0.conversationID.isEmpty }, "no key of the new epoch is sealed to the revoked assistant")
        _ = try await world.b._receiveLog(log)
        _ = try await world.b._receiveEnvelopes(queued.map { try KeyEnvelope(message: $0) })
        // The assistant, not yet told, writes again under its old grant: beyond its cut-off.
        try await world.assistant._playHostile()
        try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "after")
        for events in try await deliver(world, from: world.assistant) {
            #expect(events.contains { $0.kind == .beyondRemovalCutoff && $0.device == world.assistant.deviceID })
        }
        #expect(await texts(world.b, world.inScope) == ["plan the trip", "before"])
        // Written after the revocation: the colluding server gives the assistant everything.
        try await world.a.appendMessage(to: world.inScope, role: .user, text: "cloak-canary-after-revoke")
        try await world.relay.collect(from: world.a)
        _ = try await world.assistant._receiveLog(log)
        _ = try await world.assistant._receiveEnvelopes(queued.map { try KeyEnvelope(message: $0) })
        _ = try await world.relay.deliverAll(to: world.assistant)
        #expect(await !world.assistant.allMessageTexts(world.inScope).contains("cloak-canary-after-revoke"))
        #expect(await world.assistant._keyCounts() == [0, 0], "its keys are wiped")
        #expect(await world.a.conversation(world.inScope)?.assistants.isEmpty == true)
        #expect(try await world.a.assistants().first?.isActive == false)
    }

    @Test("ADV-49 a hostile write this device held is judged when it ends the assistant itself, and the alarm is raised")
    func heldWriteJudgedByOwnRevocation() async throws {
        let world = try await world(seed: 69)
        try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "honest")
        _ = try await world.assistant._drainOutbox()  // the server keeps this one from B
        try await world.assistant._playHostile()
        try await world.assistant.appendMessage(to: world.inScope, role: .user, text: "pretend user")
        let second = try await world.assistant._drainOutbox()
        // B holds the second for the gap before it.
        _ = try await world.b._receive(second.enumerated().map { (UInt64(900 + $0.offset), $0.element) })
        #expect(await world.b._heldCount() == second.count)
        // B ends the assistant itself (with no cut-off there: it accepted nothing of it), and
        // judges what it held as the new entry lands: the event reaches the app.
        let events = try await world.b._endAssistantEvents(world.assistant.deviceID)
        #expect(events.contains { $0.kind == .beyondRemovalCutoff && $0.device == world.assistant.deviceID })
        #expect(await world.b._heldCount() == 0)
        #expect(await texts(world.b, world.inScope) == ["plan the trip"])
    }

    @Test("ADV-49 past a restriction's cut-off nothing is waited for, and a reply left unsealed there wakes nobody")
    func restrictionEndsExpectations() async throws {
        let world = try await world(seed: 67, scopeBoth: true)
        let removedChain = ChainKey(conversation: world.inScope, author: world.assistant.deviceID)
        let keptChain = ChainKey(conversation: world.outside, author: world.assistant.deviceID)
        #expect(await world.b._acceptedLimit(removedChain) == nil)
        // The assistant is mid-reply in the conversation about to leave its scope.
        let reply = try await world.assistant.appendMessage(to: world.inScope, role: .assistant, text: "thinking")
        try await world.assistant.streamText(" more", into: reply, in: world.inScope)
        #expect(await world.assistant._nextBatchDeadline() != nil)
        let (log, queued) = try await world.a._endAssistantLocally(world.assistant.deviceID, removing: [world.inScope])
        let forAssistant = try queued.filter { !$0.conversationID.isEmpty }.map { try ConversationKeyEnvelope(message: $0) }
        _ = try await world.b._receiveLog(log)
        // A saw nothing of the assistant there: its cut-off ends the chain before seq 1.
        #expect(await world.b._acceptedLimit(removedChain) == 0)
        #expect(await world.b._acceptedLimit(keptChain) == nil)
        _ = try await world.assistant._receiveLog(log)
        _ = try await world.assistant._receiveEnvelopes([], conversationKeys: forAssistant)
        // The batch can never be sealed there (no key of the new epoch): not a deadline, and
        // nothing waiting to be sent (the assistant is synced), though it is kept.
        #expect(await world.assistant._nextBatchDeadline() == nil)
        #expect(await world.assistant.syncStatus().unacknowledgedEdits == 0)
        #expect(try await world.assistant._nothingToSend())
        #expect(await world.assistant._pendingConversations() == [world.inScope])
    }

    @Test("ADV-49 removing a conversation from the scope rotates keys: the assistant reads only what it keeps")
    func restriction() async throws {
        let world = try await world(seed: 66, scopeBoth: true)
        let (log, queued) = try await world.a._endAssistantLocally(world.assistant.deviceID, removing: [world.inScope])
        let forAssistant = try queued.filter { !$0.conversationID.isEmpty }.map { try ConversationKeyEnvelope(message: $0) }
        #expect(forAssistant.map(\.conversation) == [world.outside], "sealed for exactly the remaining scope")
        #expect(forAssistant.allSatisfy { $0.epoch == 2 && $0.recipient == world.assistant.deviceID })
        _ = try await world.b._receiveLog(log)
        _ = try await world.assistant._receiveLog(log)
        _ = try await world.assistant._receiveEnvelopes([], conversationKeys: forAssistant)
        try await world.a.appendMessage(to: world.inScope, role: .user, text: "cloak-canary-removed")
        try await world.a.appendMessage(to: world.outside, role: .user, text: "still shared")
        try await world.relay.collect(from: world.a)
        _ = try await world.relay.deliverAll(to: world.assistant)
        #expect(await !world.assistant.allMessageTexts(world.inScope).contains("cloak-canary-removed"))
        #expect(await world.assistant.allMessageTexts(world.outside).contains("still shared"))
        #expect(await world.a.conversation(world.inScope)?.assistants.isEmpty == true)
        #expect(await world.a.conversation(world.outside)?.assistants.map(\.id) == [world.assistant.deviceID])
    }

    @Test("ADV-49 an assistant takes no epoch key and no key of a conversation outside its scope, whoever seals it")
    func keysOnlyForTheScope() async throws {
        let world = try await world(seed: 67)
        let invitation = await world.assistant.assistantInvitation()
        let epochKey = try await world.a._sealEpochKey(epoch: 1, to: invitation)
        let outsideKey = try await world.a._sealConversationKey(world.outside, epoch: 1, to: invitation)
        let output = try await world.assistant._receiveEnvelopes([epochKey], conversationKeys: [outsideKey])
        #expect(output.events.filter { $0.kind == .keyEnvelopeRejected }.count == 2)
        #expect(await world.assistant._keyCounts() == [0, 1])
        _ = try await world.relay.deliverAll(to: world.assistant)
        #expect(await !world.assistant.allMessageTexts(world.outside).contains("cloak-canary-outside-scope"))
    }
}

extension AssistantTests {
    @Test("ADV-45 ADV-49 an out-of-scope change set (a server's replay) is held, never withheld; a later grant admits it")
    func outsideScopeIsNotWaitedFor() async throws {
        let world = try await world(seed: 68)
        // The relay handed the assistant everything, the outside conversation's change set too:
        // it can never read it (no key of that conversation comes to it), so it keeps it aside.
        #expect(await world.assistant._heldConversations().contains(world.outside))
        _ = try await world.assistant._reviewExpectations()
        world.clock.advance(ClientConfiguration().withheldAfterMillis * 3)
        let later = try await world.assistant._reviewExpectations()
        #expect(!later.events.contains { $0.kind == .withheld }, "nothing it could read was kept from it")
        let status = await world.assistant.syncStatus()
        #expect(status.incidents.isEmpty && status.members.allSatisfy { $0.knownMissing == 0 })
        // Granted that conversation after all: the keys of its history admit what was held.
        let invitation = await world.assistant.assistantInvitation()
        let (log, envelopes) = try await world.a._grantLocally(
            invitation, [world.outside], expiresAtMs: world.clock.nowMillis() + 3_600_000)
        _ = try await world.assistant._receiveLog(log.entries.map(\.wire))
        _ = try await world.assistant._receiveEnvelopes([], conversationKeys: envelopes)
        #expect(await world.assistant.allMessageTexts(world.outside).contains("cloak-canary-outside-scope"))
        #expect(await !world.assistant._heldConversations().contains(world.outside))
    }

    @Test("ADV-45 a device that lacks an epoch key grants nothing: the assistant would never get that epoch's keys")
    func grantNeedsEveryEpochKey() async throws {
        let world = try await world(seed: 70)
        // A revokes the assistant (epoch 2); the server keeps the new key envelope from B.
        let (log, queued) = try await world.a._endAssistantLocally(world.assistant.deviceID, removing: nil)
        _ = try await world.b._receiveLog(log)
        let newcomer = try makeClient(seed: 7_070, clock: world.clock)
        let invitation = await newcomer.assistantInvitation()
        let expiry = world.clock.nowMillis() + 60_000
        await #expect(throws: ClientError.missingEpochKey(2)) {
            try await world.b._grantLocally(invitation, [world.inScope], expiresAtMs: expiry)
        }
        _ = try await world.b._receiveEnvelopes(queued.map { try KeyEnvelope(message: $0) })
        let (_, envelopes) = try await world.b._grantLocally(invitation, [world.inScope], expiresAtMs: expiry)
        #expect(envelopes.map(\.epoch) == [1, 2], "the conversation's whole history")
    }

    @Test("what a grant costs: one log entry and one envelope per conversation and epoch, each a few hundred bytes")
    func grantCost() async throws {
        let clock = ManualClock()
        let a = try await makeAccount(devices: 1, seed: 69, clock: clock)[0]
        var conversations: [ConversationID] = []
        for n in 0..<10 { conversations.append(try await a.createConversation(title: "c\(n)")) }
        let assistant = try makeClient(seed: 6_969, clock: clock)
        let invitation = await assistant.assistantInvitation()
        let (log, envelopes) = try await a._grantLocally(invitation, conversations, expiresAtMs: clock.nowMillis() + 60_000)
        let entryBytes = try #require(log.entries.last).wire.count
        let envelopeBytes = envelopes.map { FrameCodec.serialize($0.message).count }
        #expect(envelopes.count == 10, "one per conversation of the scope in the one epoch")
        #expect(entryBytes < 250 + 18 * 10)
        #expect(envelopeBytes.allSatisfy { $0 < 400 })
        TestData.report(
            "assistant grant of 10 conversations in 1 epoch: entry \(entryBytes) B, envelopes \(envelopeBytes.reduce(0, +)) B "
                + "(\(envelopeBytes.first ?? 0) B each)")
    }
}

extension CloakClient {
    /// A grant made on this device without a server: the new log and the keys sealed to it.
    func _grantLocally(_ invitation: AssistantInvitation, _ conversations: [ConversationID], expiresAtMs: UInt64)
        throws -> (DeviceLog, [ConversationKeyEnvelope])
    {
        let core = engine.core
        let entry = try core.prepareGrant(invitation, conversations: conversations, expiresAtMs: expiresAtMs)
        _ = try core.commitAppended(entry)
        let envelopes = try core.conversationKeyEnvelopes(
            to: invitation.id, invitation.agreementKey, conversations: conversations)
        return (core.log!, envelopes)
    }

    /// A revocation (`removing` nil) or restriction made here: the new log and every queued envelope.
    func _endAssistantLocally(_ id: DeviceID, removing: [ConversationID]?) throws -> ([[UInt8]], [Cloak_V1_KeyEnvelope]) {
        let core = engine.core
        let (entry, key) = try core.prepareEndAssistant(id, removing: removing, reason: .revoked)
        _ = try core.commitAppended(entry, newEpochKey: key)
        let queued = try core.queuedEnvelopes()
        try core.envelopesDelivered(queued.map(\.id))
        return (core.log!.entries.map(\.wire), queued.map(\.envelope))
    }

    /// Revokes an assistant here as the flow does: the events taking the new entry raised.
    func _endAssistantEvents(_ id: DeviceID) throws -> [SecurityEvent] {
        let core = engine.core
        let (entry, key) = try core.prepareEndAssistant(id, removing: nil, reason: .revoked)
        var output = CoreOutput()
        _ = try core.commitAppended(entry, newEpochKey: key, output: &output)
        return output.events
    }

    func _joinAsAssistant(log: DeviceLog, envelopes: [ConversationKeyEnvelope]) throws {
        try engine.core.joinAsAssistant(log: log, envelopes: envelopes)
    }

    func _receiveEnvelopes(_ envelopes: [KeyEnvelope], conversationKeys: [ConversationKeyEnvelope]) throws -> CoreOutput {
        try engine.core.receiveEnvelopes(envelopes, conversationKeys: conversationKeys)
    }

    func _conversationKey(_ conversation: ConversationID, epoch: UInt64) -> SymmetricKey? {
        var keyring = engine.core.membership.keyring
        return keyring.conversationKey(conversation, epoch: epoch)
    }

    /// Turns this assistant's own checks off (and optionally slips it a key): a modified client.
    func _playHostile(extraKey: (ConversationID, UInt64, SymmetricKey)? = nil) throws {
        let core = engine.core
        core.checksOwnAssistantRights = false
        if let (conversation, epoch, key) = extraKey {
            let cipher = core.cipher
            try core.store.write { tx in try core.membership.addScopedKeys([(conversation, epoch, key)], tx, cipher: cipher) }
        }
    }

    func _expiredAssistants() -> [DeviceID] { engine.core.expiredAssistants() }

    func _keyCounts() -> [Int] {
        [engine.core.membership.keyring.epochKeys.count, engine.core.membership.keyring.scopedKeys.count]
    }

    func _sealEpochKey(epoch: UInt64, to invitation: AssistantInvitation) throws -> KeyEnvelope {
        let core = engine.core
        let key = core.membership.keyring.epochKeys[epoch]!
        return try core.seal(key, epoch: epoch, account: core.account!, to: invitation.id, invitation.agreementKey)
    }

    func _sealConversationKey(_ conversation: ConversationID, epoch: UInt64, to invitation: AssistantInvitation)
        throws -> ConversationKeyEnvelope
    {
        let core = engine.core
        var keyring = core.membership.keyring
        let key = keyring.conversationKey(conversation, epoch: epoch)!
        return try core.sealConversationKey(key, conversation: conversation, epoch: epoch, to: invitation.id, invitation.agreementKey)
    }
}

extension CloakClient {
    func _acceptedLimit(_ key: ChainKey) -> UInt64? { engine.core.acceptedLimit(key) }

    func _nextBatchDeadline() -> UInt64? { engine.core.nextBatchDeadline }

    func _nothingToSend() throws -> Bool { try engine.core.nothingToSend() }

    func _pendingConversations() -> Set<ConversationID> { Set(engine.core.outbox.pending.keys) }

    func _heldConversations() -> Set<ConversationID> {
        Set(engine.core.ledger.held.values.map(\.changeSet.header.conversation))
    }
}
