import CloakCrypto
import CloakProtocol
import CloakSimulation
import Foundation
import Testing

@testable import CloakServer

/// A change set's hash excludes its signature, so a badly signed copy stored first (server-side
/// signature checks off) would hold its chain position for good. A pushed copy whose signature
/// verifies replaces a stored one whose signature does not (PROTOCOL.md §19; ADV-35, ADV-44).
@Suite struct DamagedCopyTests {
    private func results(_ frames: [Cloak_V1_Frame]) -> [Cloak_V1_PushResult] {
        frames.compactMap(\.pushAckBody).first?.results ?? []
    }

    private func stored(_ store: InMemoryServerStore, _ account: TestAccount) throws -> [StoredChangeSet] {
        guard case .changeSets(let items) = try store.performNow(
            .changeSets(.init(account: account.account, afterCursor: 0, throughCursor: .max, limit: 100, maxBytes: 1 << 24)))
        else { return [] }
        return items
    }

    @Test(arguments: [false, true])
    func aVerifyingCopyReplacesAHostileFirstCopyAtTheSameCursor(afterRestart: Bool) throws {
        let store = InMemoryServerStore()
        let server = makeServer(store: store)
        var account = TestAccount.make(seed: 440)
        var client = CoreClient(server)
        client.login(account, register: true)
        let good = account.next(in: conversation(1))
        let second = account.next(in: conversation(1))
        let hostile = badlySigned(good)
        #expect(results(client.send(Frames.pushBytes([hostile], id: 3))).map(\.cursor) == [1])
        client.send(Frames.push([second], id: 4))
        let bytesBefore = store.accountNow(account.account)?.storedBytes
        if afterRestart {
            // The position behind the head now comes from the store, not the registry's memory.
            server.restart()
            client = CoreClient(server)
            client.login(account)
        }
        let answer = results(client.send(Frames.push([good], id: 5)))
        #expect(answer.map(\.duplicate) == [true])
        #expect(answer.map(\.cursor) == [1])
        #expect(answer.map(\.error) == [.unspecified])
        #expect(try stored(store, account).map(\.bytes) == [good.wire, second.wire])
        #expect(store.accountNow(account.account)?.storedBytes == bytesBefore)
        // The same good bytes again: a plain duplicate, nothing to replace.
        #expect(results(client.send(Frames.push([good], id: 6))).map(\.duplicate) == [true])
    }

    @Test func aHostileCopyNeverReplacesAGoodStoredOne() throws {
        let store = InMemoryServerStore()
        let server = makeServer(store: store)
        var account = TestAccount.make(seed: 441, devices: 2)
        let client = CoreClient(server)
        client.login(account, register: true)
        client.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let good = account.next(in: conversation(1))
        client.send(Frames.push([good], id: 3))
        // Neither as the author's own push nor as another member's restore push.
        #expect(results(client.send(Frames.pushBytes([badlySigned(good)], id: 4))).map(\.duplicate) == [true])
        let other = CoreClient(server)
        other.login(account, device: 1)
        #expect(results(other.send(Frames.pushBytes([badlySigned(good)], id: 5, restore: true))).map(\.error) == [.badSignature])
        #expect(try stored(store, account).map(\.bytes) == [good.wire])
    }

    @Test func twoBadCopiesStayAPlainDuplicate() throws {
        let store = InMemoryServerStore()
        let server = makeServer(store: store)
        var account = TestAccount.make(seed: 442)
        let client = CoreClient(server)
        client.login(account, register: true)
        let good = account.next(in: conversation(1))
        let first = badlySigned(good)
        let otherBad = badlySigned(good, index: 1, mask: 0x80)
        client.send(Frames.pushBytes([first], id: 3))
        #expect(results(client.send(Frames.pushBytes([otherBad], id: 4))).map(\.duplicate) == [true])
        #expect(try stored(store, account).map(\.bytes) == [first])
    }

    @Test func aBetterCopyInTheSameCommitWindowReplacesTheStagedOne() throws {
        let store = InMemoryServerStore()
        let server = makeServer(store: store, autoCommit: false)
        var account = TestAccount.make(seed: 443)
        let client = CoreClient(server)
        client.send(Frames.register(account.genesis, id: 1))
        server.commit()
        client.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: client.nonce))
        let good = account.next(in: conversation(1))
        // The hostile copy and the good one in one push, then the good one again in another
        // push while the first is still uncommitted.
        var frames = client.send(Frames.pushBytes([badlySigned(good), good.wire], id: 3))
        frames += client.send(Frames.push([good], id: 4))
        #expect(frames.compactMap(\.pushAckBody).isEmpty)
        while server.commit() {}
        let acks = client.receive().compactMap(\.pushAckBody)
        #expect(acks.map { $0.results.map(\.cursor) } == [[1, 1], [1]])
        #expect(acks.map { $0.results.map(\.duplicate) } == [[false, true], [true]])
        #expect(try stored(store, account).map(\.bytes) == [good.wire])
        #expect(store.accountNow(account.account)?.storedBytes == Int64(good.wire.count))
    }

    @Test func theCopyVerdictChecksBothSignatures() throws {
        var account = TestAccount.make(seed: 444)
        let good = account.next(in: conversation(1))
        let bad = badlySigned(good)
        #expect(CopyVerdict.judge(stored: bad, pushed: good, log: account.log).replace)
        #expect(!CopyVerdict.judge(stored: good.wire, pushed: try ChangeSet(wire: bad), log: account.log).replace)
        // A stored copy that no longer parses counts as badly signed.
        #expect(CopyVerdict.judge(stored: [1, 2, 3], pushed: good, log: account.log).replace)
        // An author the log does not list: nothing to check against, nothing replaced.
        #expect(!CopyVerdict.judge(stored: bad, pushed: good, log: TestAccount.make(seed: 445).log).replace)
    }
}
