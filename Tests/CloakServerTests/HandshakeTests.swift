import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import Foundation
import Testing

/// ServerHello, Register, Authenticate and the pre-authentication rules (PROTOCOL.md §"Handshake").
@Suite struct HandshakeTests {
    @Test func helloCarriesAFreshNonceTheLimitsAndVersionOne() {
        let server = makeServer { $0.limits.maxFrameBytes = 123_456 }
        let id = server.connect(nowMs: 42)
        let frames = server.drain(id).compactMap { output -> Cloak_V1_Frame? in
            if case .frame(let bytes) = output { return decodeServerFrame(bytes) }
            return nil
        }
        guard case .serverHello(let hello) = frames.first?.body else {
            Issue.record("no ServerHello")
            return
        }
        #expect(hello.versions == [1])
        #expect(hello.nonce.count == 32)
        #expect(hello.serverTimeMs == 42)
        #expect(hello.limits.maxFrameBytes == 123_456)
        let other = CoreClient(server)
        #expect(other.nonce != Array(hello.nonce))
    }

    @Test func registerThenAuthenticate() {
        let server = makeServer()
        let account = TestAccount.make(seed: 1)
        let client = CoreClient(server)
        let result = client.login(account, register: true)
        #expect(result?.deviceLogLength == 1)
        #expect(result?.headCursor == 0)
        #expect(client.closedWith == nil)
    }

    @Test func registeringTwiceIsAccountExists() {
        let server = makeServer()
        let account = TestAccount.make(seed: 2)
        let client = CoreClient(server)
        client.login(account, register: true)
        let again = CoreClient(server).send(Frames.register(account.genesis, id: 9))
        #expect(again.first?.errorCode == .accountExists)
        #expect(again.first?.requestID == 9)
        // After a restart the account is only in the store.
        server.restart()
        let afterRestart = CoreClient(server).send(Frames.register(account.genesis, id: 10))
        #expect(afterRestart.first?.errorCode == .accountExists)
    }

    @Test func registerRejectsATamperedGenesis() {
        let server = makeServer()
        let account = TestAccount.make(seed: 3)
        var message = account.genesis.message
        message.createdAtMs += 1
        var body = Cloak_V1_Register()
        body.genesis = Data(FrameCodec.serialize(message))
        let reply = CoreClient(server).send(FrameCodec.encode(.register(body), requestID: 4))
        #expect(reply.first?.errorCode == .badSignature)
    }

    @Test func authenticationFailuresAreRefusedWithTheirCodesAndClose() {
        let server = makeServer()
        var account = TestAccount.make(seed: 4, devices: 2)
        let owner = CoreClient(server)
        owner.login(account, register: true)
        owner.send(Frames.appendDeviceLog(account.log.entries[1], id: 3))

        // Wrong signature (ADV-06): signed by another key.
        let wrongKey = CoreClient(server)
        let stranger = TestDevice(seed: 999)
        wrongKey.send(
            Frames.authenticate(account: account.account, deviceID: account.devices[0].id, key: stranger.signing, nonce: wrongKey.nonce))
        #expect(wrongKey.closedWith == .authFailed)

        // Replayed response: a signature over another connection's nonce.
        let replay = CoreClient(server)
        replay.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: owner.nonce))
        #expect(replay.closedWith == .authFailed)

        // Unknown account.
        let unknown = CoreClient(server)
        let other = TestAccount.make(seed: 5)
        unknown.send(Frames.authenticate(account: other.account, device: other.devices[0], nonce: unknown.nonce))
        #expect(unknown.closedWith == .unknownAccount)

        // Unsupported version.
        let version = CoreClient(server)
        version.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: version.nonce, version: 2))
        #expect(version.closedWith == .unsupportedVersion(2))

        // Revoked device.
        owner.send(Frames.appendDeviceLog(account.removeDevice(1), id: 4))
        let revoked = CoreClient(server)
        revoked.send(Frames.authenticate(account: account.account, device: account.devices[1], nonce: revoked.nonce))
        #expect(revoked.closedWith == .deviceNotActive)
    }

    @Test func requestsBeforeAuthenticationCloseWithNotAuthenticated() {
        let server = makeServer()
        var account = TestAccount.make(seed: 6)
        let client = CoreClient(server)
        let reply = client.send(Frames.push([account.next(in: conversation(1))], id: 5))
        #expect(reply.first?.errorCode == .notAuthenticated)
        #expect(reply.first?.requestID == 5)
        #expect(client.closedWith == .notAuthenticated)
    }

    @Test("ADV-46 an outsider who knows only the account id gets nothing to test a guess against")
    func outsiderLearnsNothingGuessable() {
        let server = makeServer()
        let account = TestAccount.make(seed: 7)
        CoreClient(server).login(account, register: true)
        let outsider = CoreClient(server)
        // The log (with the members' and the recovery key's public keys): not without a proof.
        #expect(outsider.send(Frames.fetchDeviceLog(account.account, id: 8)).first?.errorCode == .invalidField)
        // A stranger's valid proof: only the length, no entries.
        let stranger = TestDevice(seed: 4242)
        let strangerReply = outsider.send(Self.provedFetch(account.account, stranger, nonce: outsider.nonce, id: 9))
        guard case .deviceLogEntries(let bare) = strangerReply.first?.body else {
            Issue.record("no DeviceLogEntries")
            return
        }
        #expect(bare.entries.isEmpty && bare.logLength == 1)
        // Passphrase parameters by account id are no longer served.
        var byAccount = Cloak_V1_FetchRecovery()
        byAccount.accountID = Data(account.account.bytes)
        let recovery = outsider.send(FrameCodec.encode(.fetchRecovery(byAccount), requestID: 10))
        #expect(recovery.first?.errorCode == .invalidField)
        // An evaluation on a server without a recovery key: nothing to evaluate.
        var evaluate = Cloak_V1_RecoveryEvaluate()
        evaluate.accountID = Data(account.account.bytes)
        evaluate.blindedElement = Data((try? Hex.decode("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")) ?? [])
        #expect(outsider.send(FrameCodec.encode(.recoveryEvaluate(evaluate), requestID: 11)).first?.errorCode == .recoveryUnavailable)
        // None of that closed the connection; a ping still answers.
        let pong = outsider.send(Frames.ping(77, id: 12))
        guard case .pong(let body) = pong.first?.body else {
            Issue.record("no Pong")
            return
        }
        #expect(body.nonce == 77 && pong.first?.requestID == 12)
        #expect(outsider.closedWith == nil)
    }

    @Test("a member's log-access proof serves the log before authentication; a forged one closes")
    func memberProofServesTheLog() {
        let server = makeServer()
        let account = TestAccount.make(seed: 7)
        CoreClient(server).login(account, register: true)
        let member = CoreClient(server)
        let log = member.send(Self.provedFetch(account.account, account.devices[0], nonce: member.nonce, id: 8))
        guard case .deviceLogEntries(let entries) = log.first?.body else {
            Issue.record("no DeviceLogEntries")
            return
        }
        #expect(entries.entries.map { Array($0) } == [account.genesis.wire])
        // An unknown account's log is a request error that keeps the connection open.
        let missing = member.send(Self.provedFetch(TestAccount.make(seed: 8).account, account.devices[0], nonce: member.nonce, id: 10))
        #expect(missing.first?.errorCode == .unknownAccount)
        #expect(member.closedWith == nil)
        // A proof signed over another connection's nonce is a failed authentication.
        let forger = CoreClient(server)
        _ = forger.send(Self.provedFetch(account.account, account.devices[0], nonce: member.nonce, id: 1))
        #expect(forger.closedWith == .authFailed)
    }

    static func provedFetch(_ account: AccountID, _ device: TestDevice, nonce: [UInt8], id: UInt64) -> [UInt8] {
        var body = Cloak_V1_FetchDeviceLog()
        body.accountID = Data(account.bytes)
        body.deviceID = Data(device.id.bytes)
        body.signature = Data(LogAccessProof.sign(serverNonce: nonce, account: account, device: device.id, key: device.signing))
        return FrameCodec.encode(.fetchDeviceLog(body), requestID: id)
    }

    @Test func secondAuthenticateIsUnexpected() {
        let server = makeServer()
        let account = TestAccount.make(seed: 9)
        let client = CoreClient(server)
        client.login(account, register: true)
        let reply = client.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: client.nonce, id: 11))
        #expect(reply.first?.errorCode == .unexpectedFrame)
        #expect(client.closedWith == nil)
    }

    @Test func connectionLimitPerAccount() {
        let server = makeServer { $0.maxConnectionsPerAccount = 2 }
        let account = TestAccount.make(seed: 10)
        CoreClient(server).login(account, register: true)
        CoreClient(server).login(account)
        let third = CoreClient(server)
        third.login(account)
        #expect(third.closedWith == .tooManyConnections)
    }

    @Test func malformedFramesCloseWithTheirCodes() {
        let server = makeServer { $0.limits.maxFrameBytes = 1024 }
        let garbage = CoreClient(server)
        garbage.send([0xFF, 0xFF, 0xFF])
        #expect(garbage.closedWith?.wireCode == .malformedFrame)
        let empty = CoreClient(server)
        empty.send(FrameCodec.encode(Cloak_V1_Frame()))
        #expect(empty.closedWith?.wireCode == .malformedFrame)
        let text = CoreClient(server)
        server.receiveText(from: text.id, nowMs: 3_000)
        _ = text.receive()
        #expect(text.closedWith?.wireCode == .malformedFrame)
        let large = CoreClient(server)
        large.send([UInt8](repeating: 0, count: 1025))
        #expect(large.closedWith?.wireCode == .frameTooLarge)
        #expect(ProtocolError.frameTooLarge(size: 0, limit: 0).webSocketCloseCode == 1009)
    }

    @Test func handshakeAndIdleTimeouts() {
        let server = makeServer {
            $0.handshakeTimeoutMs = 1_000
            $0.idleTimeoutMs = 5_000
        }
        let account = TestAccount.make(seed: 11)
        let idle = CoreClient(server, nowMs: 0)
        idle.login(account, register: true)
        let silent = CoreClient(server, nowMs: 0)
        // A pre-authentication frame does not extend the handshake.
        silent.send(Frames.ping(1, id: 1), nowMs: 500)
        server.tick(nowMs: 1_000)
        _ = silent.receive()
        #expect(silent.closedWith == .handshakeTimeout)
        server.tick(nowMs: 6_999)
        _ = idle.receive()
        #expect(idle.closedWith == nil)
        server.tick(nowMs: 7_000)
        _ = idle.receive()
        #expect(idle.closedWith == .idleTimeout)
    }
}
