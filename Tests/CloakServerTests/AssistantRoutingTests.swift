import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import Foundation
import Testing

/// The server routes to an assistant only its conversations' change sets and refuses what it
/// may not do (PROTOCOL.md §29 "Server routing"). The clients' checks are the ones that count
/// (CloakClientTests.AssistantTests); these keep an honest server from showing an assistant
/// what is not for it.
@Suite struct AssistantRoutingTests {
    static let expiry: UInt64 = 1_700_000_000_000 + 86_400_000

    /// An account (device 0) that granted assistant `devices[1]` conversation 1, with a change
    /// set of device 0 in conversations 1 and 2; returns the server, the device and the account.
    func granted(seed: UInt64) -> (SynchronousServer, CoreClient, TestAccount) {
        let server = makeServer()
        var account = TestAccount.make(seed: seed)
        let assistant = TestDevice(seed: seed &* 7 &+ 3)
        let grant = DeviceLogEntry.grantAssistant(
            signingKey: assistant.signing.publicKey, agreementKey: assistant.agreement.publicKey,
            scope: [conversation(1)], expiresAtMs: Self.expiry, after: account.log, signer: account.devices[0].signing,
            createdAtMs: 1_700_000_000_000)
        do { try account.log.append(grant) } catch { Issue.record("grant: \(error)") }
        account.devices.append(assistant)
        let device = CoreClient(server)
        device.login(account, register: true)
        device.send(Frames.appendDeviceLog(grant, id: 2))
        device.send(Frames.push([account.next(in: conversation(1)), account.next(in: conversation(2))], id: 3))
        return (server, device, account)
    }

    private func cursors(_ frames: [Cloak_V1_Frame]) -> [UInt64] {
        frames.compactMap(\.deliverBody).flatMap { $0.items.map(\.cursor) }
    }

    @Test("ADV-49 an assistant is sent only its conversations' change sets, at catch-up and live")
    func routesOnlyTheScope() {
        let (_, device, account) = granted(seed: 90)
        var mutable = account
        let assistant = CoreClient(device.server)
        #expect(assistant.login(account, device: 1) != nil)
        #expect(cursors(assistant.send(Frames.subscribe(after: 0, id: 4))) == [1], "catch-up: conversation 1 only")
        device.send(Frames.push([mutable.next(in: conversation(2)), mutable.next(in: conversation(1))], id: 5))
        #expect(cursors(assistant.receive()) == [4], "live: conversation 1 only")
        // Naming a conversation outside its scope is refused, not silently filtered.
        let other = CoreClient(device.server)
        other.login(account, device: 1)
        let refused = other.send(Frames.subscribe(after: 0, conversations: [conversation(2)], id: 6))
        #expect(refused.compactMap(\.errorCode) == [.outOfScope])
    }

    @Test("ADV-49 an assistant's push outside its scope or after its expiry is refused; device-only requests too")
    func refusesPushesElsewhere() {
        let (_, device, account) = granted(seed: 91)
        var mutable = account
        let assistant = CoreClient(device.server)
        assistant.login(account, device: 1)
        let results = assistant.send(
            Frames.push([mutable.next(by: 1, in: conversation(2)), mutable.next(by: 1, in: conversation(1))], id: 4)
        ).compactMap(\.pushAckBody).first?.results ?? []
        #expect(results.map(\.error) == [.outOfScope, .unspecified])
        // Past its expiry, its next request closes the connection.
        let late = assistant.send(Frames.push([mutable.next(by: 1, in: conversation(1))], id: 5), nowMs: Self.expiry + 1)
        #expect(late.compactMap(\.errorCode) == [.grantExpired])
        #expect(late.compactMap(\.pushAckBody).isEmpty)
        #expect(assistant.closedWith == .grantExpired)
        let entry = DeviceLogEntry.add(
            signingKey: TestDevice(seed: 5).signing.publicKey, agreementKey: TestDevice(seed: 5).agreement.publicKey,
            after: account.log, signer: account.devices[1].signing, createdAtMs: 1_700_000_000_000)
        let other = CoreClient(device.server)
        other.login(account, device: 1)
        #expect(other.send(Frames.appendDeviceLog(entry, id: 6)).compactMap(\.errorCode) == [.notPermitted])
    }

    @Test("ADV-44 ADV-49 an assistant gives back its own lost change sets with a restore push, and only its own")
    func restoresOnlyItsOwn() {
        let (_, device, account) = granted(seed: 93)
        var mutable = account
        let assistant = CoreClient(device.server)
        assistant.login(account, device: 1)
        // A restore push is never refused as STALE_DEVICE_LOG: what the server acknowledged and
        // lost before a removal can come back only so, and no member may hold it (seed 222).
        let own = mutable.next(by: 1, in: conversation(1))
        let members = mutable.next(by: 0, in: conversation(1))
        let results = assistant.send(Frames.pushBytes([own.wire, members.wire], id: 4, restore: true))
            .compactMap(\.pushAckBody).first?.results ?? []
        #expect(results.map(\.error) == [.unspecified, .wrongAuthor])
    }

    @Test("ADV-49 after a grant widens its scope, an assistant's new Subscribe from 0 gets the added conversation's history and live change sets")
    func widenedScopeIsSubscribedAgain() throws {
        let (_, device, account) = granted(seed: 94)
        var mutable = account
        let assistant = CoreClient(device.server)
        assistant.login(account, device: 1)
        #expect(cursors(assistant.send(Frames.subscribe(after: 0, id: 4))) == [1])
        let widen = DeviceLogEntry.grantAssistant(
            signingKey: account.devices[1].signing.publicKey, agreementKey: account.devices[1].agreement.publicKey,
            scope: [conversation(1), conversation(2)], expiresAtMs: Self.expiry, after: mutable.log,
            signer: account.devices[0].signing, createdAtMs: 1_700_000_000_001)
        try mutable.log.append(widen)
        device.send(Frames.appendDeviceLog(widen, id: 5))
        _ = assistant.receive()
        // The client subscribes again from 0 when it sees the grant (§29): the server's filter is
        // the scope as it stands then.
        #expect(cursors(assistant.send(Frames.subscribe(after: 0, id: 6))) == [1, 2])
        device.send(Frames.push([mutable.next(in: conversation(2))], id: 7))
        #expect(cursors(assistant.receive()) == [3])
    }

    @Test("an assistant whose grant expired cannot authenticate")
    func expiredCannotAuthenticate() {
        let (server, _, account) = granted(seed: 92)
        let assistant = CoreClient(server, nowMs: Self.expiry + 1)
        let reply = assistant.send(
            Frames.authenticate(account: account.account, device: account.devices[1], nonce: assistant.nonce),
            nowMs: Self.expiry + 1)
        #expect(reply.compactMap(\.errorCode) == [.grantExpired])
    }
}
