import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import Foundation
import Testing

/// Catch-up, the hand-off to live delivery, and fanout (PROTOCOL.md §"Subscribe").
@Suite struct SubscribeTests {
    private func cursors(_ frames: [Cloak_V1_Frame]) -> [UInt64] {
        frames.compactMap(\.deliverBody).flatMap { $0.items.map(\.cursor) }
    }

    @Test func catchUpComesInBoundedBatchesAndOnlyTheLastIsCaughtUp() {
        let server = makeServer { $0.limits.maxCatchUpBatch = 4 }
        var account = TestAccount.make(seed: 30)
        let writer = CoreClient(server)
        writer.login(account, register: true)
        for i in 0..<10 { writer.send(Frames.push([account.next(in: conversation(UInt8(i % 2 + 1)))], id: UInt64(10 + i))) }
        let reader = CoreClient(server)
        reader.login(account)
        let frames = reader.send(Frames.subscribe(after: 3, id: 7))
        let delivers = frames.compactMap(\.deliverBody)
        #expect(delivers.map(\.items.count) == [4, 3])
        #expect(delivers.map(\.caughtUp) == [false, true])
        #expect(cursors(frames) == Array(4...10))
        #expect(frames.allSatisfy { $0.requestID == 7 })
        // A filter delivers only those conversations.
        let filtered = CoreClient(server)
        filtered.login(account)
        let odd = cursors(filtered.send(Frames.subscribe(after: 0, conversations: [conversation(1)], id: 8)))
        #expect(odd == [1, 3, 5, 7, 9])
        // Nothing to send: one empty Deliver that is caught up.
        let empty = CoreClient(server)
        empty.login(account)
        let none = empty.send(Frames.subscribe(after: 10, id: 9)).compactMap(\.deliverBody)
        #expect(none.count == 1 && none.first?.items.isEmpty == true && none.first?.caughtUp == true)
    }

    @Test func liveFanoutForwardsTheStoredBytesToOtherConnectionsOnly() {
        let server = makeServer()
        var account = TestAccount.make(seed: 31, devices: 2)
        let a = CoreClient(server)
        a.login(account, register: true)
        a.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let b = CoreClient(server)
        b.login(account, device: 1)
        _ = a.send(Frames.subscribe(after: 0, id: 3))
        _ = b.send(Frames.subscribe(after: 0, id: 3))
        let changeSet = account.next(in: conversation(1))
        let pusher = a.send(Frames.push([changeSet], id: 4))
        #expect(pusher.compactMap(\.pushAckBody).count == 1)
        #expect(pusher.compactMap(\.deliverBody).isEmpty)
        let live = b.receive().compactMap(\.deliverBody)
        #expect(live.count == 1)
        #expect(live.first?.caughtUp == true)
        #expect(live.first.map { Array($0.items[0].changeSet) } == changeSet.wire)
        #expect(live.first?.items.first?.cursor == 1)
    }

    @Test func noCursorIsSkippedOrDuplicatedAcrossTheHandOff() {
        // Commits land while the subscriber is between catch-up pages.
        let server = makeServer({ $0.limits.maxCatchUpBatch = 2 }, autoCommit: false)
        var account = TestAccount.make(seed: 32, devices: 2)
        let writer = CoreClient(server)
        writer.send(Frames.register(account.genesis, id: 1))
        server.commit()
        writer.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: writer.nonce))
        writer.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        for i in 0..<5 { writer.send(Frames.push([account.next(in: conversation(1))], id: UInt64(10 + i))) }
        server.commit()
        let reader = CoreClient(server)
        reader.login(account, device: 1)
        // Staged but uncommitted: not part of the catch-up promise.
        writer.send(Frames.push([account.next(in: conversation(1))], id: 20))
        var seen = cursors(reader.send(Frames.subscribe(after: 0, id: 5)))
        server.commit()
        writer.send(Frames.push([account.next(in: conversation(1))], id: 21))
        server.commit()
        seen += cursors(reader.receive())
        #expect(seen == [1, 2, 3, 4, 5, 6, 7])
    }

    @Test func fetchChangeSetsAnswersOneRange() {
        let server = makeServer()
        var account = TestAccount.make(seed: 33)
        let client = CoreClient(server)
        client.login(account, register: true)
        let pushed = (0..<4).map { _ in account.next(in: conversation(1)) }
        client.send(Frames.push(pushed, id: 3))
        var body = Cloak_V1_FetchChangeSets()
        body.conversationID = Data(conversation(1).bytes)
        body.author = Data(account.devices[0].id.bytes)
        body.fromSeq = 2
        body.toSeq = 3
        let reply = client.send(FrameCodec.encode(.fetchChangeSets(body), requestID: 4)).compactMap(\.deliverBody)
        #expect(reply.first?.items.map { Array($0.changeSet) } == [pushed[1].wire, pushed[2].wire])
        body.toSeq = 5_000
        #expect(client.send(FrameCodec.encode(.fetchChangeSets(body), requestID: 5)).first?.errorCode == .invalidField)
    }

    @Test func removingADeviceClosesItsConnections() {
        let server = makeServer()
        var account = TestAccount.make(seed: 34, devices: 2)
        let owner = CoreClient(server)
        owner.login(account, register: true)
        owner.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let removed = CoreClient(server)
        removed.login(account, device: 1)
        _ = removed.send(Frames.subscribe(after: 0, id: 3))
        let reply = owner.send(Frames.appendDeviceLog(account.removeDevice(1), id: 4))
        #expect(reply.contains { if case .done = $0.body { true } else { false } })
        _ = removed.receive()
        #expect(removed.closedWith == .deviceNotActive)
        // Its later pushes are not accepted: it cannot authenticate any more.
        let again = CoreClient(server)
        again.login(account, device: 1)
        #expect(again.closedWith == .deviceNotActive)
    }

    @Test func deviceLogAppendsMustExtendTheHead() {
        let server = makeServer()
        var account = TestAccount.make(seed: 35, devices: 2)
        let owner = CoreClient(server)
        owner.login(account, register: true)
        let stale = account.log.entries[1]
        owner.send(Frames.appendDeviceLog(stale, id: 2))
        #expect(owner.send(Frames.appendDeviceLog(stale, id: 3)).first?.errorCode == .deviceLogConflict)
        // An entry signed by someone else than the session.
        let byOther = account.addDevice(TestDevice(seed: 77), signer: 1)
        #expect(owner.send(Frames.appendDeviceLog(byOther, id: 4)).first?.errorCode == .wrongAuthor)
    }
}

/// The hand-written Deliver encoder against SwiftProtobuf's decoder.
@Suite struct DeliverEncoderTests {
    @Test(arguments: [0, 1, 300, 70_000] as [UInt64])
    func encodesWhatProtobufDecodes(requestID: UInt64) {
        let items = [
            StoredChangeSet(cursor: 1, bytes: [1, 2, 3]), StoredChangeSet(cursor: 1 << 40, bytes: [UInt8](repeating: 7, count: 300)),
            StoredChangeSet(cursor: 5, bytes: []),
        ]
        for caughtUp in [false, true] {
            let bytes = DeliverEncoder.encode(requestID: requestID, items: items, caughtUp: caughtUp)
            let frame = decodeServerFrame(bytes)
            #expect(frame?.requestID == requestID)
            #expect(frame?.deliverBody?.caughtUp == caughtUp)
            #expect(frame?.deliverBody?.items.map(\.cursor) == items.map(\.cursor))
            #expect(frame?.deliverBody?.items.map { Array($0.changeSet) } == items.map(\.bytes))
            var expected = Cloak_V1_Deliver()
            expected.caughtUp = caughtUp
            expected.items = items.map {
                var item = Cloak_V1_StoredChangeSet()
                item.cursor = $0.cursor
                item.changeSet = Data($0.bytes)
                return item
            }
            #expect(bytes == FrameCodec.encode(.deliver(expected), requestID: requestID))
        }
    }
}
