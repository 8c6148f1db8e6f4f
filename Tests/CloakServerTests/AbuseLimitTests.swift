import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import Foundation
import Testing

/// Process-wide limits against abuse (ADV-34, ADV-42) and the operator's blocks: each answers
/// with its typed code, and the limit frees up again.
@Suite struct AbuseLimitTests {
    /// What the server's maintenance does every few seconds: read the cached accounts' states.
    private func sweep(_ server: SynchronousServer, _ store: InMemoryServerStore) async throws {
        let checked = server.registry.cachedAccounts
        server.registry.applyAccessStates(try await store.accessStates(checked), checked: checked)
    }

    @Test func adv42ConnectionsOverTheProcessCapAreRefusedWithTooManyConnections() {
        let server = makeServer { $0.maxConnections = 2 }
        let first = CoreClient(server)
        _ = CoreClient(server)
        let third = CoreClient(server)
        #expect(third.closedWith == .tooManyConnections)
        #expect(first.closedWith == nil && first.nonce.count == 32)
        server.disconnect(third.id)
        server.disconnect(first.id)
        let fourth = CoreClient(server)
        #expect(fourth.closedWith == nil)
    }

    @Test func adv42ConnectionsOverTheAddressCapAreRefusedWhileOtherAddressesConnect() {
        let server = makeServer { $0.maxConnectionsPerAddress = 1 }
        let a = CoreClient(server, address: "192.0.2.1")
        let again = CoreClient(server, address: "192.0.2.1")
        let other = CoreClient(server, address: "192.0.2.2")
        #expect(a.closedWith == nil && other.closedWith == nil)
        #expect(again.closedWith == .tooManyConnections)
        server.disconnect(again.id)
        server.disconnect(a.id)
        #expect(CoreClient(server, address: "192.0.2.1").closedWith == nil)
    }

    @Test("ADV-46 connections that have not authenticated are capped per address and in total; authenticating frees a place")
    func unauthenticatedConnectionsAreCapped() {
        let server = makeServer {
            $0.maxUnauthenticatedConnections = 3
            $0.maxUnauthenticatedConnectionsPerAddress = 2
        }
        let account = TestAccount.make(seed: 61)
        let first = CoreClient(server, address: "192.0.2.1")
        _ = CoreClient(server, address: "192.0.2.1")
        let third = CoreClient(server, address: "192.0.2.1")
        #expect(first.closedWith == nil && third.closedWith == .tooManyConnections)
        server.disconnect(third.id)
        let elsewhere = CoreClient(server, address: "192.0.2.2")
        #expect(elsewhere.closedWith == nil)
        #expect(CoreClient(server, address: "192.0.2.3").closedWith == .tooManyConnections)
        // A connection that authenticates no longer counts against the caps.
        first.login(account, register: true)
        #expect(first.closedWith == nil)
        #expect(CoreClient(server, address: "192.0.2.1").closedWith == nil)
    }

    @Test("ADV-46 a MailboxPut before authentication is small and limited per address")
    func anonymousMailboxPutsAreBounded() {
        let server = makeServer { $0.maxAnonymousMailboxPutsPerAddress = 2 }
        let client = CoreClient(server, address: "192.0.2.9")
        func put(_ bytes: Int, id: UInt64) -> Cloak_V1_Frame? {
            var body = Cloak_V1_MailboxPut()
            body.mailboxID = Data(repeating: UInt8(id), count: 16)
            body.payload = Data(repeating: 1, count: bytes)
            return client.send(FrameCodec.encode(.mailboxPut(body), requestID: id)).first
        }
        #expect(put(257, id: 1)?.errorCode == .invalidField)
        if case .done = put(256, id: 2)?.body {} else { Issue.record("a 256-byte answer was refused") }
        if case .done = put(10, id: 3)?.body {} else { Issue.record("a second answer was refused") }
        #expect(put(10, id: 4)?.errorCode == .rateLimited)
        #expect(client.closedWith == nil)
    }

    @Test func registrationsAreLimitedPerAddressAndInTotalOverTheWindow() {
        let server = makeServer {
            $0.maxRegistrationsPerAddress = 2
            $0.maxRegistrations = 3
            $0.registrationWindowMs = 60_000
        }
        func register(_ seed: UInt64, from address: String, at nowMs: UInt64) -> Cloak_V1_ErrorCode? {
            let client = CoreClient(server, nowMs: nowMs, address: address)
            let reply = client.send(Frames.register(TestAccount.make(seed: seed).genesis, id: 1), nowMs: nowMs)
            if case .done = reply.first?.body { return nil }
            return reply.first?.errorCode
        }
        #expect(register(450, from: "a", at: 1_000) == nil)
        #expect(register(451, from: "a", at: 2_000) == nil)
        #expect(register(452, from: "a", at: 3_000) == .rateLimited)
        #expect(register(453, from: "b", at: 4_000) == nil)
        // The global window is full now, whatever the address.
        #expect(register(454, from: "c", at: 5_000) == .rateLimited)
        // The window slides: the first registrations leave it.
        #expect(register(455, from: "a", at: 62_500) == nil)
    }

    @Test func writesPastTheTotalStorageCapAreQuotaExceeded() {
        let server = makeServer { $0.maxTotalStoredBytes = 4_000 }
        var account = TestAccount.make(seed: 456)
        let client = CoreClient(server)
        client.login(account, register: true)
        let small = account.next(in: conversation(1), bodyBytes: 64)
        #expect(client.send(Frames.push([small], id: 3)).first?.pushAckBody?.results.first?.error == .unspecified)
        // The store says others hold almost everything already (the adapter's periodic figure).
        server.registry.setTotalStoredBytes(4_000 - 100)
        let next = account.next(in: conversation(1), bodyBytes: 64)
        #expect(client.send(Frames.push([next], id: 4)).first?.pushAckBody?.results.first?.error == .quotaExceeded)
        server.registry.setTotalStoredBytes(0)
        #expect(client.send(Frames.push([next], id: 5)).first?.pushAckBody?.results.first?.error == .unspecified)
    }

    @Test func aBlockedAccountIsRefusedAtAuthenticationAndItsConnectionsAreClosed() async throws {
        let store = InMemoryServerStore()
        let server = makeServer(store: store)
        let account = TestAccount.make(seed: 457)
        let live = CoreClient(server)
        live.login(account, register: true)
        #expect(try await store.setBlocked(account.account, blocked: true))
        // A sweep of the store reads the flag and applies it.
        try await sweep(server, store)
        _ = live.receive()
        #expect(live.closedWith == .accountBlocked)
        let late = CoreClient(server)
        #expect(late.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: late.nonce))
            .map(\.errorCode) == [.accountBlocked])
        // Unblocked (and read fresh after a restart): authentications succeed again.
        #expect(try await store.setBlocked(account.account, blocked: false))
        server.restart()
        #expect(CoreClient(server).login(account) != nil)
    }

    @Test func anErasedAccountsConnectionsAreClosedAsUnknown() async throws {
        let store = InMemoryServerStore()
        let server = makeServer(store: store)
        let account = TestAccount.make(seed: 458)
        let live = CoreClient(server)
        live.login(account, register: true)
        let report = try await store.eraseAccount(account.account)
        #expect(report.rows["accounts"] == 1 && report.rows["device_log"] == 1)
        try await sweep(server, store)
        _ = live.receive()
        #expect(live.closedWith == .unknownAccount)
        let late = CoreClient(server)
        #expect(late.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: late.nonce))
            .map(\.errorCode) == [.unknownAccount])
    }
}
