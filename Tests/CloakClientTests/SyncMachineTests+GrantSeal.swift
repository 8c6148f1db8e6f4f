import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

extension SyncMachineTests {
    /// PROTOCOL.md §29: no one seals an epoch before a grant to the assistant later, so a grant
    /// whose connection ended between its entry and its key envelopes left the assistant holding
    /// the conversation's history unreadable for good (simulator seeds 401 and 904: a widening
    /// cut by a network fault). The device remembers the grant until its envelopes are stored,
    /// and the next connection's heads scan seals them.
    @Test("ADV-49 a grant cut off between its entry and its envelopes seals the keys on the next connection")
    func grantCutBeforeItsEnvelopesSealsThemOnTheNextConnection() throws {
        var machine = SyncMachine(configuration: ClientConfiguration())
        let core = try core()
        let (invitation, conversation, healed) = try grantCutThenReconnected(&machine, core)
        #expect(!healed.events.contains { $0.kind == .serverRollback })
        let put = try #require(healed.frames.first { $0.body?.name == "put_key_envelopes" }, "the grant's keys")
        guard case .putKeyEnvelopes(let list) = put.body else { return }
        let sealed = try list.envelopes.map { try ConversationKeyEnvelope(message: $0) }
        #expect(sealed.map(\.conversation) == [conversation])
        #expect(sealed.allSatisfy { $0.recipient == invitation.id })
        _ = machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: put.requestID)), core: core)
        #expect(try core.unsealedGrantEnvelopes().isEmpty, "stored: not sealed again")
    }

    /// A grant's envelopes sealed again and refused whole (the server's log lacks an epoch they
    /// name: a restored server while another member gives the entries back) keep the grant
    /// marked, so a connection that ends before they go again does not lose them for good.
    @Test("ADV-49 a grant's re-sealed envelopes the server refuses keep the grant marked until they are stored")
    func refusedGrantResealKeepsItsMark() throws {
        var machine = SyncMachine(configuration: ClientConfiguration())
        let core = try core()
        let (_, conversation, healed) = try grantCutThenReconnected(&machine, core)
        let put = try #require(healed.frames.first { $0.body?.name == "put_key_envelopes" })
        var error = Cloak_V1_Error()
        error.code = .invalidField
        error.message = "envelope epoch 2 does not exist"
        _ = machine.handle(.frame(FrameCodec.encode(.error(error), requestID: put.requestID)), core: core)
        #expect(try core.unsealedGrantEnvelopes().flatMap(\.envelopes).map(\.conversationID) == [Data(conversation.bytes)])

        // The connection ends before a longer log is served: the next one seals them again.
        _ = machine.handle(.disconnected, core: core)
        clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
        _ = machine.handle(.tick, core: core)
        let again = try #require(caughtUp(&machine, core, headCursor: 1).first { $0.body?.name == "fetch_heads" })
        let resent = headsReply(heads(core), to: again, &machine, core)
        let put2 = try #require(resent.frames.first { $0.body?.name == "put_key_envelopes" }, "sealed again")
        _ = machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: put2.requestID)), core: core)
        #expect(try core.unsealedGrantEnvelopes().isEmpty, "stored: forgotten")
    }

    /// A device grants an assistant a conversation; the server stores the entry, then the
    /// connection ends before the key envelopes. Up to the next connection's heads reply (what
    /// it sent then).
    private func grantCutThenReconnected(_ machine: inout SyncMachine, _ core: ClientCore) throws
        -> (AssistantInvitation, ConversationID, (events: [SecurityEvent], frames: [Cloak_V1_Frame]))
    {
        let conversation = ConversationID.random(using: core.random)
        _ = try core.editLibrary { library, replica, now throws(LibraryEditError) in
            [try library.addConversation(conversation.libraryKey, replica: &replica, physicalMillis: now)]
        }
        _ = try core.flushDueBatches(force: true)
        _ = machine.handle(.start, core: core)

        // First connection: the library edit is acknowledged, the heads scan finds nothing.
        let frames = caughtUp(&machine, core, headCursor: 0)
        let push = try #require(frames.first { $0.body?.name == "push" })
        let pushed = try #require({ if case .push(let body) = push.body { body } else { nil } }())
        _ = machine.handle(.frame(FrameCodec.encode(.pushAck(try accepted(pushed)), requestID: push.requestID)), core: core)
        let scan = try #require(frames.first { $0.body?.name == "fetch_heads" })
        _ = headsReply([], to: scan, &machine, core)

        // A grant: the server stores the entry, then the connection ends before the envelopes.
        let random = DeterministicRandom(seed: 77)
        let invitation = AssistantInvitation(
            signingKey: Ed25519PrivateKey(using: random).publicKey, agreementKey: X25519PrivateKey(using: random).publicKey)
        let flow = GrantAssistantFlow(
            invitation: invitation, conversations: [conversation], expiresAtMs: clock.nowMillis() + 3_600_000)
        let append = try #require(
            sent(machine.handle(.startFlow(FlowID(value: 1), flow), core: core)).first { $0.body?.name == "append_device_log" })
        let envelopes = sent(machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: append.requestID)), core: core))
        #expect(envelopes.contains { $0.body?.name == "put_key_envelopes" })
        #expect(core.log?.assistants[invitation.id] != nil, "the grant is in the log")
        _ = machine.handle(.disconnected, core: core)
        clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
        _ = machine.handle(.tick, core: core)

        // Next connection: once the heads scan agrees, the keys go (and nothing else is healed).
        let again = try #require(caughtUp(&machine, core, headCursor: 1).first { $0.body?.name == "fetch_heads" })
        return (invitation, conversation, headsReply(heads(core), to: again, &machine, core))
    }

    /// The server's heads agreeing with every chain this device knows.
    private func heads(_ core: ClientCore) -> [Cloak_V1_ChainHead] {
        core.ledger.chains.map { key, position in
            var head = Cloak_V1_ChainHead()
            head.conversationID = Data(key.conversation.bytes)
            head.device = Data(key.author.bytes)
            head.seq = position.seq
            head.hash = Data(position.hash.bytes)
            return head
        }
    }
}
