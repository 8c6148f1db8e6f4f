import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// ADV-47: a member equivocates inside valid signatures — its operations reuse ids it already
/// used with other content, or carry a clock ten years ahead. Every receiver refuses (or
/// defers) them with an event, and all end in the same state.
@Suite("Equivocating members: reused operation ids, far-future clocks")
struct EquivocationTests {
    /// A device that shares `source`'s identity and chains but whose replica (operation counter
    /// and clock) is `replica`: a member replaying its own ids after a local-state rollback.
    func equivocator(of source: CloakClient, replica: Replica, seed: UInt64, clock: ManualClock) async throws -> CloakClient {
        let secrets = InMemorySecretStore()
        try await source._exportSecrets(to: secrets)
        let twin = try CloakClient.open(
            store: try SQLiteClientStore(path: nil), secrets: secrets, server: testServer, transport: NoTransport(),
            clock: clock, random: DeterministicRandom(seed: seed), verifier: InlineSignatureVerifier())
        try await twin._copyState(from: source)
        await twin._setReplica(replica)
        return twin
    }

    @Test("ADV-47 a change set reusing operation ids with other text is refused with an event on every device")
    func reusedIDs() async throws {
        let clock = ManualClock()
        let devices = try await makeAccount(devices: 3, seed: 41, clock: clock)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let relay = Relay()
        let chat = try await a.createConversation(title: "trip")
        try await relay.collect(from: a)
        for device in [b, c] { _ = try await relay.deliverAll(to: device) }
        // The twin has A's state from before "AAAA" (a restored backup of A)…
        let twin = try await equivocator(of: a, replica: await a._replica(), seed: 411, clock: clock)
        let honest = try await a.appendMessage(to: chat, role: .user, text: "AAAA")
        try await relay.collect(from: a)
        for device in [b, c] { _ = try await relay.deliverAll(to: device) }
        // …and continues A's chains (so its change set is in sequence), reusing A's ids.
        await twin._setChains(await a._chains())
        let reused = try await twin.appendMessage(to: chat, role: .user, text: "BBBBBBBB")
        #expect(reused == honest, "the twin's message claims the id of A's")
        try await relay.collect(from: twin)
        for device in [a, b, c] {
            let output = try await relay.deliverAll(to: device)
            #expect(output.events.contains { $0.kind == .reusedOperationID && $0.device == a.deviceID })
            #expect(await device.allMessageTexts(chat) == ["AAAA"], "no silent merge of the two texts")
        }
        #expect(await b.stateHash(of: chat) == (await c.stateHash(of: chat)))
        #expect(await b.stateHash(of: chat) == (await a.stateHash(of: chat)))
    }

    @Test("ADV-28 ADV-47 an operation ten years ahead waits, with a clock-skew event on every device")
    func farFuture() async throws {
        let clock = ManualClock()
        let devices = try await makeAccount(devices: 3, seed: 42, clock: clock)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let relay = Relay()
        let chat = try await a.createConversation(title: "plans")
        try await relay.collect(from: a)
        for device in [b, c] { _ = try await relay.deliverAll(to: device) }
        let future = ManualClock()
        future.advance(clock.nowMillis() - future.nowMillis() + 10 * 365 * 86_400_000)
        let skewed = try await equivocator(of: a, replica: await a._replica(), seed: 421, clock: future)
        try await skewed.appendMessage(to: chat, role: .user, text: "from the future")
        try await relay.collect(from: skewed)
        for device in [b, c] {
            let output = try await relay.deliverAll(to: device)
            #expect(output.events.contains { $0.kind == .clockSkew && $0.device == a.deviceID })
            #expect(await device.allMessageTexts(chat).isEmpty, "deferred, not shown")
        }
        #expect(await b.stateHash(of: chat) == (await c.stateHash(of: chat)))
    }
}

extension CloakClient {
    func _replica() -> Replica { engine.core.outbox.replica }
    func _setReplica(_ replica: Replica) { engine.core.outbox.replica = replica }
    func _chains() -> [ChainKey: ChainPosition] { engine.core.ledger.chains }
    func _setChains(_ chains: [ChainKey: ChainPosition]) { engine.core.ledger.chains = chains }
}
