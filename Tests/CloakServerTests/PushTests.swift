import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import Foundation
import Testing

/// Push validation, chain checks, acknowledgement after commit (PROTOCOL.md §"Push").
@Suite struct PushTests {
    private func results(_ frames: [Cloak_V1_Frame]) -> [Cloak_V1_PushResult] {
        frames.compactMap(\.pushAckBody).first?.results ?? []
    }

    @Test func acceptedChangeSetsGetIncreasingCursorsAndLaterItemsBuildOnEarlierOnes() {
        let server = makeServer()
        var account = TestAccount.make(seed: 20)
        let client = CoreClient(server)
        client.login(account, register: true)
        let batch = (0..<5).map { _ in account.next(in: conversation(1)) }
        let acked = results(client.send(Frames.push(batch, id: 3)))
        #expect(acked.map(\.cursor) == [1, 2, 3, 4, 5])
        #expect(acked.allSatisfy { $0.error == .unspecified && !$0.duplicate })
        #expect(acked.map { Array($0.hash) } == batch.map(\.hash.bytes))
    }

    @Test func theAckWaitsForTheGroupCommit() {
        let server = makeServer(autoCommit: false)
        var account = TestAccount.make(seed: 21)
        let client = CoreClient(server)
        client.send(Frames.register(account.genesis, id: 1))
        #expect(client.receive().isEmpty)
        server.commit()
        #expect(client.receive().first.map { if case .done = $0.body { true } else { false } } == true)
        client.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: client.nonce))
        let first = client.send(Frames.push([account.next(in: conversation(1))], id: 3))
        let second = client.send(Frames.push([account.next(in: conversation(1))], id: 4))
        #expect(first.isEmpty && second.isEmpty)
        // Both pushes were staged while nothing committed: one group commit acknowledges both.
        #expect(server.commit())
        let acks = client.receive().compactMap(\.pushAckBody)
        #expect(acks.count == 2)
        #expect(!server.commit())
    }

    @Test func duplicatesAreIdempotentForksAndGapsAreRefused() {
        let server = makeServer()
        var account = TestAccount.make(seed: 22)
        let client = CoreClient(server)
        client.login(account, register: true)
        let first = account.next(in: conversation(1))
        let second = account.next(in: conversation(1))
        _ = client.send(Frames.push([first, second], id: 3))
        // Same bytes again: acknowledged with the stored cursor, nothing new.
        let again = results(client.send(Frames.push([first], id: 4)))
        #expect(again.first?.duplicate == true && again.first?.cursor == 1)
        // Another change set at seq 2: a fork.
        let fork = account.make(by: 0, in: conversation(1), seq: 2, prev: first.hash)
        #expect(results(client.send(Frames.push([fork], id: 5))).first?.error == .fork)
        // seq 3 whose prev_hash is not seq 2's: a fork.
        let badPrev = account.make(by: 0, in: conversation(1), seq: 3, prev: first.hash)
        #expect(results(client.send(Frames.push([badPrev], id: 6))).first?.error == .fork)
        // seq 5 after 2: a gap.
        let gap = account.make(by: 0, in: conversation(1), seq: 5, prev: second.hash)
        #expect(results(client.send(Frames.push([gap], id: 7))).first?.error == .gap)
        // After a restart the registry must ask the store (duplicate and fork behind the head).
        server.restart()
        let fresh = CoreClient(server)
        fresh.login(account)
        let stored = results(fresh.send(Frames.push([first, fork], id: 8)))
        #expect(stored.map(\.duplicate) == [true, false])
        #expect(stored.map(\.error) == [.unspecified, .fork])
        #expect(stored.first?.cursor == 1)
    }

    @Test(arguments: [true, false]) func itemChecksGiveTheirCodes(verifySignatures: Bool) throws {
        let server = makeServer {
            $0.limits.maxChangeSetBytes = 2_000
            $0.verifyChangeSetSignatures = verifySignatures
        }
        var account = TestAccount.make(seed: 23, devices: 2)
        var other = TestAccount.make(seed: 24)
        let client = CoreClient(server)
        client.login(account, register: true)
        client.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let ok = account.next(in: conversation(1))
        let wrongAuthor = account.next(by: 1, in: conversation(1))
        let otherAccount = other.next(in: conversation(1))
        var tampered = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: ok.wire, what: "change set")
        tampered.seq = 2
        tampered.prevHash = Data(ok.hash.bytes)
        let badSignature = FrameCodec.serialize(tampered)
        let tooLarge = account.make(by: 0, in: conversation(2), seq: 1, prev: .zero, bodyBytes: 3_000).wire
        let items = [ok.wire, wrongAuthor.wire, otherAccount.wire, badSignature, tooLarge, [0x01, 0x02]]
        let got: [Cloak_V1_ErrorCode] = results(client.send(Frames.pushBytes(items, id: 3))).map(\.error)
        // Without the server's own signature check the re-numbered copy is stored as the
        // author's seq 2: only its author could push it, and receivers refuse it (§9).
        let signatureResult: Cloak_V1_ErrorCode = verifySignatures ? .badSignature : .unspecified
        #expect(got == [.unspecified, .wrongAuthor, .invalidField, signatureResult, .changeSetTooLarge, .invalidField])
    }

    @Test func staleDeviceLogHeadIsInvalid() {
        let server = makeServer()
        var account = TestAccount.make(seed: 25)
        let client = CoreClient(server)
        client.login(account, register: true)
        // Written under a log head the server does not have.
        var future = account
        future.addDevice(TestDevice(seed: 4242))
        let changeSet = future.next(in: conversation(1))
        #expect(results(client.send(Frames.push([changeSet], id: 3))).first?.error == .invalidField)
        _ = account.next(in: conversation(1))
    }

    /// ADV-08: a change set written under a head older than the newest removal may be sealed
    /// under a key the removed device holds; it is refused with STALE_DEVICE_LOG and not
    /// stored. A stored one resent after the removal (its ack lost) is still a duplicate, and
    /// the re-sealed copy under the new head takes the same seq.
    @Test func changeSetsWrittenBeforeARemovalAreRefusedAsStale() {
        let server = makeServer()
        var account = TestAccount.make(seed: 27, devices: 2)
        let client = CoreClient(server)
        client.login(account, register: true)
        client.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let stored = account.next(in: conversation(1))
        #expect(results(client.send(Frames.push([stored], id: 3))).first?.cursor == 1)
        let unsent = account.next(in: conversation(1))
        let removal = account.removeDevice(1)
        #expect(client.send(Frames.appendDeviceLog(removal, id: 4)).first.map { if case .done = $0.body { true } else { false } } == true)
        let answer = results(client.send(Frames.push([stored, unsent], id: 5)))
        #expect(answer.map(\.duplicate) == [true, false])
        #expect(answer.map(\.error) == [.unspecified, .staleDeviceLog])
        #expect(answer.map(\.cursor) == [1, 0])
        let resealed = account.make(by: 0, in: conversation(1), seq: 2, prev: stored.hash)
        #expect(resealed.header.deviceLogIndex == removal.index)
        let again = results(client.send(Frames.push([resealed], id: 6)))
        #expect(again.first?.error == .unspecified)
        #expect(again.first?.cursor == 2)
    }

    @Test func pushLimits() {
        let server = makeServer {
            $0.limits.maxChangeSetsPerPush = 2
            $0.limits.maxPushesPerSecond = 2
            $0.limits.maxAccountBytes = 2_000
        }
        var account = TestAccount.make(seed: 26)
        let client = CoreClient(server)
        client.login(account, register: true)
        let three = (0..<3).map { _ in account.make(by: 0, in: conversation(9), seq: 1, prev: .zero) }
        let reply = client.send(Frames.push(three, id: 3), nowMs: 10_000)
        #expect(reply.first?.errorCode == .tooManyChangeSets && reply.first?.requestID == 3)
        // Quota (ADV-34 flood limits too): ~400-byte change sets against a 2,000-byte quota.
        var quota: [Cloak_V1_ErrorCode] = []
        for i in 0..<2 {
            quota += results(client.send(Frames.push([account.next(in: conversation(1), bodyBytes: 300), account.next(in: conversation(1), bodyBytes: 300)], id: 10 + UInt64(i)), nowMs: 20_000 + UInt64(i) * 1_000)).map(\.error)
        }
        #expect(quota.contains(.quotaExceeded))
        #expect(quota.first == .unspecified)
        // Rate: two pushes per second per device, then RATE_LIMITED; the connection stays open.
        var codes: [Cloak_V1_ErrorCode?] = []
        for i in 0..<3 {
            codes.append(client.send(Frames.push([], id: 20 + UInt64(i)), nowMs: 40_000).first?.errorCode)
        }
        #expect(codes == [nil, nil, .rateLimited])
        #expect(client.closedWith == nil)
    }

    @Test func aFailedCommitAnswersInternalAndLosesNothingAcknowledged() {
        let server = makeServer(autoCommit: false)
        var account = TestAccount.make(seed: 27)
        let client = CoreClient(server)
        client.send(Frames.register(account.genesis, id: 1))
        server.commit()
        client.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: client.nonce))
        let first = account.next(in: conversation(1))
        client.send(Frames.push([first], id: 3))
        server.commit()
        #expect(results(client.receive()).first?.cursor == 1)
        let second = account.next(in: conversation(1))
        client.send(Frames.push([second], id: 4))
        server.commit(failing: true)
        #expect(client.receive().first?.errorCode == .internal)
        // The client retries; the account reloads from the store and the chain continues.
        client.send(Frames.push([second], id: 5))
        server.commit()
        let retried = results(client.receive())
        #expect(retried.first?.cursor == 2 && retried.first?.error == .unspecified)
    }
}
