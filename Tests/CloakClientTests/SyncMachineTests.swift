import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Logging
import Testing

@_spi(Simulation) @testable import CloakClient

/// The sync protocol as a pure state machine: events in, effects out, no network.
@Suite("Sync machine transitions")
struct SyncMachineTests {
    let clock = ManualClock()

    /// A core over a new store, or (with `reopening`) the same device reopened over its store
    /// after a restart.
    func core(withAccount: Bool = true, reopening store: (any ClientStore)? = nil) throws -> ClientCore {
        let random = DeterministicRandom(seed: 5)
        let identity = DeviceIdentity(signing: Ed25519PrivateKey(using: random), agreement: X25519PrivateKey(using: random))
        let core = try ClientCore(
            store: try store ?? SQLiteClientStore(path: nil),
            environment: CoreEnvironment(
                identity: identity, cipher: LocalCipher(key: SymmetricKey.random(using: random), random: random),
                clock: clock, random: random, verifier: InlineSignatureVerifier(), configuration: ClientConfiguration(),
                logger: Logger(label: "test")))
        if withAccount, store == nil {
            let prepared = try core.prepareAccount()
            try core.adopt(log: prepared.log, keys: [1: prepared.key])
        }
        return core
    }

    func hello(versions: [UInt32] = [1]) -> [UInt8] {
        var hello = Cloak_V1_ServerHello()
        hello.versions = versions
        hello.nonce = Data(repeating: 9, count: 32)
        return FrameCodec.encode(.serverHello(hello))
    }

    func sent(_ effects: [SyncEffect]) -> [Cloak_V1_Frame] {
        effects.compactMap { effect in
            if case .send(let bytes) = effect { return try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 22) }
            return nil
        }
    }

    @Test("connect, authenticate with a valid signature over the server nonce, subscribe, go live")
    func happyPath() throws {
        let core = try core()
        var machine = SyncMachine(configuration: ClientConfiguration())
        #expect(machine.handle(.start, core: core).contains { if case .connect = $0 { true } else { false } })
        _ = machine.handle(.connected, core: core)
        let auth = sent(machine.handle(.frame(hello()), core: core))
        guard case .authenticate(let request) = auth.first?.body else {
            Issue.record("expected Authenticate, got \(auth)")
            return
        }
        let account = try #require(core.account)
        #expect(AuthChallenge.verify(
            Array(request.signature), serverNonce: [UInt8](repeating: 9, count: 32), account: account, device: core.me,
            key: core.identity.signing.publicKey))
        // This device created the account, so it has history: it subscribes from its cursor.
        _ = try core.flushDueBatches()
        let afterAuth = machine.handle(.frame(FrameCodec.encode(.authResult(Cloak_V1_AuthResult()), requestID: auth[0].requestID)), core: core)
        let kinds = sent(afterAuth).compactMap { $0.body?.name }
        #expect(kinds.contains("fetch_device_log"))
        #expect(kinds.contains("fetch_key_envelopes"))
        #expect(kinds.contains("fetch_snapshots") || kinds.contains("subscribe"))
        var deliver = Cloak_V1_Deliver()
        deliver.caughtUp = true
        if kinds.contains("fetch_snapshots") {
            let id = sent(afterAuth).first { $0.body?.name == "fetch_snapshots" }!.requestID
            let next = sent(machine.handle(.frame(FrameCodec.encode(.snapshots(Cloak_V1_SnapshotList()), requestID: id)), core: core))
            #expect(next.map { $0.body?.name } == ["subscribe"])
        }
        let live = machine.handle(.frame(FrameCodec.encode(.deliver(deliver))), core: core)
        #expect(live.contains { if case .state(.live) = $0 { true } else { false } })
    }

    @Test("ADV-25 a server that does not offer version 1 is refused and reported")
    func downgrade() throws {
        let core = try core()
        var machine = SyncMachine(configuration: ClientConfiguration())
        _ = machine.handle(.start, core: core)
        _ = machine.handle(.connected, core: core)
        let effects = machine.handle(.frame(hello(versions: [0])), core: core)
        #expect(sent(effects).isEmpty, "nothing is sent to a downgrading server")
        let events = effects.flatMap { effect -> [SecurityEvent] in
            if case .surface(let output) = effect { return output.events }
            return []
        }
        #expect(events.map(\.kind) == [.protocolViolation])
        #expect(effects.contains { if case .close = $0 { true } else { false } })
    }

    @Test("disconnects back off with jitter within the configured bounds, then reconnect")
    func backoff() throws {
        let core = try core()
        var configuration = ClientConfiguration()
        configuration.reconnectMinMillis = 100
        configuration.reconnectMaxMillis = 1000
        var machine = SyncMachine(configuration: configuration)
        _ = machine.handle(.start, core: core)
        var delays: [UInt64] = []
        for _ in 0..<8 {
            _ = machine.handle(.connected, core: core)
            let effects = machine.handle(.disconnected, core: core)
            guard let at = effects.compactMap({ e -> UInt64? in
                if case .state(.offline(let at)) = e { return at }
                return nil
            }).first else {
                Issue.record("no retry scheduled")
                return
            }
            delays.append(at - clock.nowMillis())
            #expect(machine.handle(.tick, core: core).isEmpty, "no reconnect before the deadline")
            clock.advance(at - clock.nowMillis())
            #expect(machine.handle(.tick, core: core).contains { if case .connect = $0 { true } else { false } })
        }
        #expect(delays.allSatisfy { $0 >= 50 && $0 <= 1000 })
        #expect(Set(delays).count > 1, "jittered")
    }

    @Test("a request without an answer times out and the machine reconnects")
    func requestTimeout() throws {
        let core = try core()
        var machine = SyncMachine(configuration: ClientConfiguration())
        _ = machine.handle(.start, core: core)
        _ = machine.handle(.connected, core: core)
        _ = machine.handle(.frame(hello()), core: core)
        clock.advance(ClientConfiguration().requestTimeoutMillis + 1)
        let effects = machine.handle(.tick, core: core)
        #expect(effects.contains { if case .close = $0 { true } else { false } })
    }

    /// Drives a machine to the point where the server refuses it with DEVICE_NOT_ACTIVE and it
    /// reconnects; returns the frames it sends after the next ServerHello.
    func refusedThenReconnected(_ machine: inout SyncMachine, _ core: ClientCore) -> [Cloak_V1_Frame] {
        _ = machine.handle(.start, core: core)
        _ = machine.handle(.connected, core: core)
        _ = machine.handle(.frame(hello()), core: core)
        let refusal = machine.handle(.frame(FrameCodec.encodeError(.deviceNotActive)), core: core)
        #expect(!refusal.contains { if case .state(.refused) = $0 { true } else { false } }, "not believed yet")
        clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
        #expect(machine.handle(.tick, core: core).contains { if case .connect = $0 { true } else { false } })
        _ = machine.handle(.connected, core: core)
        return sent(machine.handle(.frame(hello()), core: core))
    }

    @Test("DEVICE_NOT_ACTIVE is checked against the signed log: a verified removal wipes the keys and stops syncing")
    func refusedWithSignedRemoval() throws {
        let core = try core(withAccount: false)
        let random = DeterministicRandom(seed: 77)
        let other = Ed25519PrivateKey(using: random)
        let genesis = DeviceLogEntry.genesis(
            device: other, agreementKey: X25519PrivateKey(using: random).publicKey, accountNonce: random.bytes(16),
            createdAtMs: 1)
        var log = try DeviceLog(genesis: genesis)
        try log.append(DeviceLogEntry.add(
            .addDevice, signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey,
            after: log, signer: other, createdAtMs: 2))
        try core.adopt(log: log, keys: [1: SymmetricKey.random(using: random)])
        var removed = log
        try removed.append(DeviceLogEntry.remove(core.me, cutoffs: [], after: log, signer: other, createdAtMs: 3))
        var machine = SyncMachine(configuration: ClientConfiguration())
        let frames = refusedThenReconnected(&machine, core)
        guard case .fetchDeviceLog? = frames.first?.body else {
            Issue.record("expected an anonymous FetchDeviceLog, got \(frames.map { $0.body?.name ?? "-" })")
            return
        }
        var entries = Cloak_V1_DeviceLogEntries()
        entries.entries = removed.entries.map { Data($0.wire) }
        let effects = machine.handle(.frame(FrameCodec.encode(.deviceLogEntries(entries), requestID: frames[0].requestID)), core: core)
        #expect(effects.contains { if case .state(.refused) = $0 { true } else { false } })
        #expect(core.removedFromAccount)
        #expect(core.membership.keyring.epochKeys.isEmpty, "keys wiped (§23)")
        clock.advance(120_000)
        #expect(machine.handle(.tick, core: core).isEmpty)
    }

    @Test("DEVICE_NOT_ACTIVE without a signed removal: retried, and an alarm (not a removal) when it persists")
    func refusedWithoutRemoval() throws {
        let core = try core()
        var machine = SyncMachine(configuration: ClientConfiguration())
        _ = machine.handle(.start, core: core)
        var events: [SecurityEvent] = []
        var refused = false
        for round in 1...3 {
            // Connect, authenticate, be refused, reconnect and fetch the log anonymously.
            if round > 1 {
                clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
                #expect(machine.handle(.tick, core: core).contains { if case .connect = $0 { true } else { false } })
            }
            _ = machine.handle(.connected, core: core)
            _ = machine.handle(.frame(hello()), core: core)
            _ = machine.handle(.frame(FrameCodec.encodeError(.deviceNotActive)), core: core)
            clock.advance(ClientConfiguration().reconnectMaxMillis + 1)
            #expect(machine.handle(.tick, core: core).contains { if case .connect = $0 { true } else { false } })
            _ = machine.handle(.connected, core: core)
            let frames = sent(machine.handle(.frame(hello()), core: core))
            guard case .fetchDeviceLog? = frames.first?.body, let log = core.log else {
                Issue.record("round \(round): expected an anonymous FetchDeviceLog")
                return
            }
            var entries = Cloak_V1_DeviceLogEntries()
            entries.entries = log.entries.map { Data($0.wire) }
            let effects = machine.handle(
                .frame(FrameCodec.encode(.deviceLogEntries(entries), requestID: frames[0].requestID)), core: core)
            events += effects.flatMap { effect -> [SecurityEvent] in if case .surface(let output) = effect { output.events } else { [] } }
            refused = effects.contains { if case .state(.refused) = $0 { true } else { false } }
            #expect(refused == (round == 3), "round \(round)")
        }
        #expect(events.map(\.kind) == [.protocolViolation], "one alarm, after the refusal persisted")
        #expect(!core.removedFromAccount)
        #expect(!core.membership.keyring.epochKeys.isEmpty, "keys kept: the server's word alone removes nothing")
    }
}
