import CloakCrypto
import CloakProtocol
import CloakSimulation
import CloakServer
import Foundation
import Testing

/// FetchHeads (PROTOCOL.md §18): the server's chain heads, in (conversation, author) byte order,
/// a page at a time, so a device can compare them with what it holds (ADV-44, ADV-45).
@Suite struct HeadsTests {
    /// Pages through every head with `limit` per request.
    private func allHeads(_ client: CoreClient, limit: UInt32) -> (heads: [Cloak_V1_ChainHead], replies: Int) {
        var heads: [Cloak_V1_ChainHead] = []
        var replies = 0
        var after: (conversation: [UInt8], author: [UInt8])?
        while replies < 100 {
            replies += 1
            guard let reply = client.send(Frames.fetchHeads(after: after, limit: limit, id: 50 + UInt64(replies))).first?
                .chainHeadsBody
            else { return (heads, replies) }
            heads += reply.heads
            guard !reply.complete, let last = reply.heads.last else { break }
            after = (Array(last.conversationID), Array(last.device))
        }
        return (heads, replies)
    }

    @Test func headsComeInConversationThenAuthorOrderPageByPage() {
        let server = makeServer()
        var account = TestAccount.make(seed: 430, devices: 2)
        let device0 = CoreClient(server)
        device0.login(account, register: true)
        device0.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let device1 = CoreClient(server)
        device1.login(account, device: 1)
        // Conversation ids on both sides of 0x80, so a signed byte comparison would misorder them.
        let conversations: [UInt8] = [0x90, 0x01, 0x7F, 0x80]
        var expected: [(ConversationID, DeviceID, UInt64, ChangeSetHash)] = []
        for (index, byte) in conversations.enumerated() {
            let mine = (0...index).map { _ in account.next(by: 0, in: conversation(byte)) }
            device0.send(Frames.push(mine, id: 10 + UInt64(index)))
            expected.append((conversation(byte), account.devices[0].id, UInt64(mine.count), mine.last!.hash))
            if index % 2 == 0 {
                let theirs = account.next(by: 1, in: conversation(byte))
                device1.send(Frames.push([theirs], id: 20 + UInt64(index)))
                expected.append((conversation(byte), account.devices[1].id, 1, theirs.hash))
            }
        }
        expected.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        let (heads, replies) = allHeads(device0, limit: 2)
        #expect(replies == 3)
        #expect(heads.map { Array($0.conversationID) } == expected.map(\.0.bytes))
        #expect(heads.map { Array($0.device) } == expected.map(\.1.bytes))
        #expect(heads.map(\.seq) == expected.map(\.2))
        #expect(heads.map { Array($0.hash) } == expected.map(\.3.bytes))
        // One request with the default limit has them all, complete.
        let whole = device1.send(Frames.fetchHeads(id: 60)).first?.chainHeadsBody
        #expect(whole?.heads.count == expected.count && whole?.complete == true)
    }

    @Test func aReplyHoldsAtMostTheServersLimitWhateverWasAsked() {
        let server = makeServer { $0.limits.maxHeadsPerReply = 3 }
        var account = TestAccount.make(seed: 431)
        let client = CoreClient(server)
        client.login(account, register: true)
        for n in 1...5 { client.send(Frames.push([account.next(in: conversation(UInt8(n)))], id: UInt64(n))) }
        for asked: UInt32 in [0, 3, 1_000] {
            let reply = client.send(Frames.fetchHeads(limit: asked, id: 9)).first?.chainHeadsBody
            #expect(reply?.heads.count == 3 && reply?.complete == false, "limit \(asked)")
        }
        let two = client.send(Frames.fetchHeads(limit: 2, id: 10)).first?.chainHeadsBody
        #expect(two?.heads.count == 2)
        #expect(allHeads(client, limit: 0).heads.count == 5)
    }

    @Test func onlyCommittedHeadsAreReported() {
        let server = makeServer(autoCommit: false)
        var account = TestAccount.make(seed: 432)
        let client = CoreClient(server)
        client.send(Frames.register(account.genesis, id: 1))
        server.commit()
        client.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: client.nonce))
        client.send(Frames.push([account.next(in: conversation(1))], id: 3))
        server.commit()
        _ = client.receive()
        // Staged, not yet durable: a device must not learn of a head the server may still lose.
        client.send(Frames.push([account.next(in: conversation(1)), account.next(in: conversation(2))], id: 4))
        let reply = client.send(Frames.fetchHeads(id: 5)).first?.chainHeadsBody
        #expect(reply?.heads.map(\.seq) == [1])
        #expect(reply?.complete == true)
    }

    @Test func anEmptyAccountHasNoHeadsAndIsComplete() {
        let server = makeServer()
        let client = CoreClient(server)
        client.login(TestAccount.make(seed: 433), register: true)
        let reply = client.send(Frames.fetchHeads(id: 3)).first?.chainHeadsBody
        #expect(reply?.heads.isEmpty == true && reply?.complete == true)
    }

    @Test func aHalfOrMisSizedKeyIsAnInvalidFieldAndAuthenticationComesFirst() {
        let server = makeServer()
        let client = CoreClient(server)
        let early = client.send(Frames.fetchHeads(id: 2))
        #expect(early.map(\.errorCode) == [.notAuthenticated])
        let fresh = CoreClient(server)
        fresh.login(TestAccount.make(seed: 434), register: true)
        let sixteen = [UInt8](repeating: 1, count: 16)
        for key in [(sixteen, [UInt8]()), ([UInt8](), sixteen), ([UInt8](repeating: 1, count: 15), sixteen)] {
            #expect(fresh.send(Frames.fetchHeads(after: (key.0, key.1), id: 5)).map(\.errorCode) == [.invalidField])
        }
    }
}
