import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// The server (here: the relay between devices) tampers, forges, drops, replays and reorders;
/// every attack is detected, reported with its reason, and never changes the rendered state.
@Suite("Hostile server: the client's receive checks")
struct HostileServerTests {
    /// A (writer) and B (reader) share a conversation B has fully caught up on; `extra` are
    /// A's newer change sets that B has not seen yet.
    struct Scene {
        let a: CloakClient
        let b: CloakClient
        let chat: ConversationID
        let extra: [[UInt8]]
        let baseline: [UInt8]?
    }

    func scene(seed: UInt64 = 3, extraMessages: Int = 3) async throws -> Scene {
        let devices = try await makeAccount(devices: 2, seed: seed)
        let (a, b) = (devices[0], devices[1])
        let chat = try await a.createConversation(title: "base")
        try await a.appendMessage(to: chat, role: .user, text: "hello")
        let first = try await a._drainOutbox()
        _ = try await b._receive(first.enumerated().map { (UInt64($0.offset + 1), $0.element) })
        for n in 0..<extraMessages { try await a.appendMessage(to: chat, role: .assistant, text: "more \(n)") }
        let extra = try await a._drainOutbox()
        return Scene(a: a, b: b, chat: chat, extra: extra, baseline: await b.stateHash(of: chat))
    }

    func deliver(_ wires: [[UInt8]], to client: CloakClient, from cursor: UInt64 = 1000) async throws -> CoreOutput {
        try await client._receive(wires.enumerated().map { (cursor + UInt64($0.offset), $0.element) })
    }

    @Test("ADV-02 every flipped bit of a change set is rejected with an event and changes nothing")
    func flippedBits() async throws {
        let s = try await scene()
        let wire = s.extra[0]
        var rng = SeededRandom(seed: 2)
        var positions = Array(stride(from: 0, to: wire.count * 8, by: max(1, wire.count * 8 / 400)))
        positions += (0..<50).map { _ in Int.random(in: 0..<(wire.count * 8), using: &rng) }
        for bit in positions {
            var tampered = wire
            tampered[bit / 8] ^= UInt8(1 << (bit % 8))
            let output = try await deliver([tampered], to: s.b)
            let parsed = try? ChangeSet(wire: tampered)
            if let parsed, parsed.hash == (try ChangeSet(wire: wire)).hash {
                continue  // the flip hit bytes the parser ignores: the same change set, not applied twice
            }
            let held = await s.b._heldCount()
            #expect(!output.events.isEmpty || held > 0, "bit \(bit) neither rejected nor held")
            #expect(await s.b.stateHash(of: s.chat) == s.baseline, "bit \(bit) changed the state")
        }
        let originalHash = try ChangeSet(wire: wire).hash
        for extra in 1...64 {
            // Appended bytes that parse as unknown fields leave the signed content identical:
            // that is the same change set (same hash), not a tampered one, so it is not sent here.
            let variants = [Array(wire.dropLast(extra)), wire + [UInt8](repeating: UInt8(extra), count: extra)]
            for variant in variants where (try? ChangeSet(wire: variant))?.hash != originalHash {
                let output = try await deliver([variant], to: s.b)
                #expect(!output.events.isEmpty)
                #expect(await s.b.stateHash(of: s.chat) == s.baseline)
            }
        }
        // The untouched change set still applies afterwards.
        _ = try await deliver(s.extra, to: s.b, from: 5000)
        #expect(await s.b.stateHash(of: s.chat) == (await s.a.stateHash(of: s.chat)))
    }

    @Test("ADV-03 ADV-05 every authenticated header field rewritten to another valid value is rejected")
    func headerSubstitution() async throws {
        let s = try await scene()
        let other = try await s.a.createConversation(title: "other")
        _ = try await s.a._drainOutbox()
        let original = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: s.extra[0], what: "test")
        let rewrites: [(String, (inout Cloak_V1_ChangeSet) -> Void)] = [
            ("conversation", { $0.conversationID = Data(other.bytes) }),
            ("author", { $0.author = Data(s.b.deviceID.bytes) }),
            ("seq", { $0.seq += 5 }),
            ("epoch", { $0.epoch = 2 }),
            ("prev_hash", { $0.prevHash = Data(repeating: 7, count: 32) }),
            ("device_log_index", { $0.deviceLogIndex = 0 }),
            ("nonce", { $0.nonce = Data(repeating: 1, count: 24) }),
            ("commitment", { $0.commitment = Data(repeating: 2, count: 32) }),
            ("version", { $0.version = 2 }),
        ]
        for (field, rewrite) in rewrites {
            var message = original
            rewrite(&message)
            let output = try await deliver([FrameCodec.serialize(message)], to: s.b)
            #expect(!output.events.isEmpty, "rewriting \(field) was not reported")
            #expect(await s.b.stateHash(of: s.chat) == s.baseline, "rewriting \(field) changed the state")
        }
        #expect(await s.b.conversation(other) == nil)
    }

    @Test("ADV-04 replayed change sets (also after a restart) change nothing and raise no events")
    func replay() async throws {
        let s = try await scene()
        _ = try await deliver(s.extra, to: s.b)
        let after = await s.b.stateHash(of: s.chat)
        let events = try await s.b.recordedSecurityEvents().count
        for round in 0..<3 {
            let output = try await deliver(s.extra.shuffled(), to: s.b, from: 2000 + UInt64(round) * 100)
            #expect(output.events.isEmpty)
            #expect(output.changed.isEmpty, "a replay must not notify observers")
        }
        #expect(await s.b.stateHash(of: s.chat) == after)
        #expect(try await s.b.recordedSecurityEvents().count == events)
    }

    @Test("ADV-06 forged change sets: random bytes, unknown keys, wrong signatures are rejected")
    func forgeries() async throws {
        let s = try await scene()
        var rng = SeededRandom(seed: 6)
        let original = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: s.extra[0], what: "test")
        var random = original
        random.signature = Data(rng.bytes(64))
        var stranger = original
        let strangerKey = Ed25519PrivateKey(using: DeterministicRandom(seed: 99))
        stranger.author = Data(DeviceID(signingKey: strangerKey.publicKey).bytes)
        let forged = try await forge(stranger, key: strangerKey)
        let cases: [(String, [UInt8], SecurityEvent.Kind)] = [
            ("random bytes", rng.bytes(300), .malformedRecord),
            ("random signature", FrameCodec.serialize(random), .badSignature),
            ("non-member key", forged, .unknownAuthor),
        ]
        for (name, wire, kind) in cases {
            let output = try await deliver([wire], to: s.b)
            #expect(output.events.map(\.kind) == [kind], "\(name)")
            #expect(await s.b.stateHash(of: s.chat) == s.baseline, "\(name)")
        }
    }

    @Test("ADV-06 in a catch-up batch (signatures checked ahead on other threads) bad signatures are still rejected")
    func forgeriesInsideABatch() async throws {
        let s = try await scene(extraMessages: 8)
        var rng = SeededRandom(seed: 7)
        // Copies with another signature have the same change-set hash (the hash covers the
        // signed bytes only), so only the signature tells them apart: one copy comes right after
        // its genuine change set, the other right before it.
        func resigned(_ index: Int) throws -> [UInt8] {
            var message = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: s.extra[index], what: "test")
            message.signature = Data(rng.bytes(64))
            return FrameCodec.serialize(message)
        }
        var batch = s.extra
        batch[5] = try resigned(5)
        batch.insert(try resigned(2), at: 2)
        batch.insert(try resigned(1), at: 2)
        let output = try await deliver(batch, to: s.b)
        #expect(output.events.map(\.kind) == [.badSignature, .badSignature, .badSignature])
        let seqs = try [s.extra[1], s.extra[2], s.extra[5]].map { try ChangeSet(wire: $0).header.seq }
        #expect(output.events.map(\.seq) == seqs)
        // Everything before the broken change set applied (the genuine copy of extra[2] too);
        // what follows it waits for it.
        #expect(await texts(s.b, s.chat) == ["hello", "more 0", "more 1", "more 2", "more 3", "more 4"])
        // The genuine change set arrives later: the chain continues and both converge.
        _ = try await deliver([s.extra[5]] + s.extra[6...], to: s.b, from: 3000)
        #expect(await s.b.stateHash(of: s.chat) == (await s.a.stateHash(of: s.chat)))
    }

    @Test("ADV-16 garbage from the server is reported but the kept copies and events are bounded")
    func rejectedCopiesAreBounded() async throws {
        let s = try await scene(extraMessages: 10)
        var rng = SeededRandom(seed: 8)
        let garbage = (0..<(max(ClientCore.rejectedKept, ClientCore.securityEventsKept) + 50)).map { _ in rng.bytes(40) }
        let output = try await deliver(garbage, to: s.b)
        #expect(output.events.count == garbage.count)
        let kept = try await s.b._rejectedCount()
        #expect(kept == ClientCore.rejectedKept)
        // Then events of another kind: they must push the oldest garbage events out, not be
        // the ones dropped.
        let resigned = try s.extra.map { wire in
            var message = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: wire, what: "test")
            message.signature = Data(rng.bytes(64))
            return FrameCodec.serialize(message)
        }
        let later = try await deliver(resigned, to: s.b)
        #expect(later.events.map(\.kind) == Array(repeating: .badSignature, count: resigned.count))
        let events = try await s.b._recordedEvents()
        #expect(events.count == ClientCore.securityEventsKept)
        #expect(events.suffix(resigned.count).allSatisfy { $0.kind == .badSignature })
        #expect(events.dropLast(resigned.count).allSatisfy { $0.kind == .malformedRecord })
        #expect(await s.b.stateHash(of: s.chat) == s.baseline)
    }

    @Test("ADV-29 change sets held behind a withheld one are bounded in bytes, and come back by a later resend")
    func heldChangeSetsAreBoundedInBytes() async throws {
        var configuration = ClientConfiguration()
        let devices = try await makeAccount(devices: 2, seed: 29, configuration: { configuration.maxHeldBytes = 3_000; return configuration }())
        let (a, b) = (devices[0], devices[1])
        let chat = try await a.createConversation(title: "held")
        for n in 0..<12 { try await a.appendMessage(to: chat, role: .user, text: "message \(n) " + String(repeating: "x", count: 300)) }
        let wires = try await a._drainOutbox()
        // The server withholds the conversation's first change set: everything after it waits.
        let first = try #require(try wires.firstIndex { try ChangeSet(wire: $0).header.conversation == chat })
        var withheld = wires
        withheld.remove(at: first)
        let output = try await deliver(withheld, to: b)
        #expect(!output.gaps.isEmpty)
        let heldBytes = await b._heldBytes()
        let held = await b._heldCount()
        let largest = wires.map(\.count).max() ?? 0
        #expect(heldBytes <= 3_000 + largest)
        #expect(held >= 1 && held < wires.count - 1)
        // A later catch-up resends everything: nothing was lost, both converge.
        _ = try await deliver(wires, to: b, from: 5_000)
        #expect(await b._heldCount() == 0)
        #expect(await b.stateHash(of: chat) == (await a.stateHash(of: chat)))
    }

    /// Re-signs a rewritten change set with `key` (a member of nothing).
    func forge(_ message: Cloak_V1_ChangeSet, key: Ed25519PrivateKey) async throws -> [UInt8] {
        let parsed = try ChangeSet(wire: FrameCodec.serialize(message))
        var signed = message
        signed.signature = Data(key.signature(for: parsed.signedMessage))
        return FrameCodec.serialize(signed)
    }

    @Test("ADV-07 a dropped change set is a gap: later ones are held, re-requested, then applied")
    func gap() async throws {
        let s = try await scene(extraMessages: 4)
        let output = try await deliver(Array(s.extra.dropFirst()), to: s.b)
        #expect(await s.b._heldCount() == 3)
        #expect(output.gaps.count == 1)
        #expect(output.gaps.first?.fromSeq == 3)
        #expect(await s.b.stateHash(of: s.chat) == s.baseline)
        _ = try await deliver([s.extra[0]], to: s.b, from: 3000)
        #expect(await s.b._heldCount() == 0)
        #expect(await s.b.stateHash(of: s.chat) == (await s.a.stateHash(of: s.chat)))
    }

    @Test("ADV-13 two different change sets for one (author, seq) are a fork: reported, second never applied")
    func equivocation() async throws {
        let s = try await scene(extraMessages: 0)
        let clone = try await cloneDevice(s.a, seed: 4242)
        // Both copies of the device write their own "next" change set from the same chain position.
        try await s.a.appendMessage(to: s.chat, role: .user, text: "version one")
        let honest = try await s.a._drainOutbox()
        try await clone.appendMessage(to: s.chat, role: .user, text: "version two")
        let forked = try await clone._drainOutbox()
        #expect(try ChangeSet(wire: honest[0]).header.seq == (try ChangeSet(wire: forked[0]).header.seq))
        _ = try await deliver(honest, to: s.b)
        let applied = await s.b.stateHash(of: s.chat)
        let output = try await deliver(forked, to: s.b, from: 4000)
        #expect(output.events.map(\.kind) == [.fork])
        #expect(await s.b.stateHash(of: s.chat) == applied)
        #expect(await texts(s.b, s.chat).contains("version two") == false)
    }

    @Test("ADV-13 a server showing two devices different histories is caught through the heads they claim")
    func forkedViewsAreDetected() async throws {
        let devices = try await makeAccount(devices: 3, seed: 13)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let chat = try await a.createConversation(title: "views")
        let setup = try await a._drainOutbox()
        _ = try await deliver(setup, to: b, from: 1)
        _ = try await deliver(setup, to: c, from: 1)
        let clone = try await cloneDevice(a, seed: 1313)
        // The server gives B one version of A's next change set and C another.
        try await a.appendMessage(to: chat, role: .user, text: "version one")
        let shownToB = try await a._drainOutbox()
        try await clone.appendMessage(to: chat, role: .user, text: "version two")
        let shownToC = try await clone._drainOutbox()
        _ = try await deliver(shownToB, to: b, from: 100)
        _ = try await deliver(shownToC, to: c, from: 100)
        // C writes; its change set carries the head of A it saw. B compares it with its own.
        try await c.appendMessage(to: chat, role: .user, text: "from c")
        let fromC = try await c._drainOutbox()
        let first = try await deliver(fromC, to: b, from: 200)
        #expect(first.events.map(\.kind).contains(.forkedView))
        // Claim first, change set later: C saw A's following change set in the clone's version
        // and says so before B receives A's own.
        try await clone.appendMessage(to: chat, role: .user, text: "clone again")
        _ = try await deliver(try await clone._drainOutbox(), to: c, from: 300)
        try await c.appendMessage(to: chat, role: .user, text: "from c again")
        _ = try await deliver(try await c._drainOutbox(), to: b, from: 400)
        try await a.appendMessage(to: chat, role: .user, text: "a again")
        let later = try await deliver(try await a._drainOutbox(), to: b, from: 500)
        let views = later.events.filter { $0.kind == .forkedView }
        #expect(views.count == 1)
        #expect(views.first?.detail.contains("another device saw a different change set") == true)
    }

    /// A second device holding the same identity and state up to now (a cloned or restored
    /// device, or a malicious member equivocating).
    func cloneDevice(_ source: CloakClient, seed: UInt64) async throws -> CloakClient {
        let secrets = InMemorySecretStore()
        try await source._exportSecrets(to: secrets)
        let clone = try CloakClient.openInMemory(
            server: testServer, transport: NoTransport(), secrets: secrets, random: DeterministicRandom(seed: seed))
        try await clone._copyState(from: source)
        return clone
    }

    @Test("ADV-10 ADV-12 ADV-13 truncated, forked and forged device logs are refused and reported")
    func deviceLogAttacks() async throws {
        let devices = try await makeAccount(devices: 2, seed: 8)
        let (a, b) = (devices[0], devices[1])
        let wires = await a._logWires()
        let before = try await b.devices()
        // Rollback: a prefix of the pinned log.
        #expect(try await b._receiveLog(Array(wires.prefix(1))).events.map(\.kind) == [.deviceLogRollback])
        // Server-made add entry: signed by a key that is not a member.
        let serverKey = Ed25519PrivateKey(using: DeterministicRandom(seed: 66))
        let log = try DeviceLog(verifying: wires.map { try DeviceLogEntry(wire: $0) })
        let injected = DeviceLogEntry.add(
            signingKey: serverKey.publicKey, agreementKey: X25519PrivateKey(using: DeterministicRandom(seed: 67)).publicKey,
            after: log, signer: serverKey, createdAtMs: 1)
        #expect(try await b._receiveLog(wires + [injected.wire]).events.map(\.kind) == [.deviceLogForgery])
        // Replay of an old entry as if it were new.
        #expect(try await b._receiveLog(wires + [wires[1]]).events.map(\.kind) == [.deviceLogForgery])
        // A different entry at a pinned index: a forked view.
        let other = try await makeAccount(devices: 2, seed: 123)
        let foreign = await other[0]._logWires()
        #expect(try await b._receiveLog([wires[0], foreign[1]]).events.map(\.kind) == [.deviceLogFork])
        #expect(try await b.devices() == before)
    }
}

extension CloakClient {
    func _exportSecrets(to secrets: any SecretStore) throws {
        try secrets.store(engine.core.identity.signing.seed, named: DeviceIdentity.signingName)
        try secrets.store(engine.core.identity.agreement.secret, named: DeviceIdentity.agreementName)
    }

    func _stateCopy() -> (DeviceLog, [UInt64: SymmetricKey], [ChainKey: ChainPosition], DocumentSet, Replica) {
        let core = engine.core
        return (core.log!, core.membership.keyring.epochKeys, core.ledger.chains, core.documents.all, core.outbox.replica)
    }

    func _copyState(from source: CloakClient) async throws {
        let (log, keys, chains, documents, replica) = await source._stateCopy()
        let core = engine.core
        try core.adopt(log: log, keys: keys)
        core.ledger.chains = chains
        core.documents.all = documents
        core.outbox.replica = replica
        try core.store.write { tx in for (key, position) in chains { try tx.setChain(key, position) } }
    }
}
