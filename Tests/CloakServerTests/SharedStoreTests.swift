import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import Foundation
import Testing

/// Several server processes on one store (docs/design.md "Stores": PostgreSQL shared by several
/// processes). Two synchronous servers over one in-memory store stand in for two processes:
/// each has its own registry and cache; `remoteCommit` stands in for the other's NOTIFY, so
/// the tests decide exactly when (or whether) an announcement arrives.
@Suite struct SharedStoreTests {

    private func cursors(_ frames: [Cloak_V1_Frame]) -> [UInt64] {
        frames.compactMap(\.deliverBody).flatMap { $0.items.map(\.cursor) }
    }

    private func stored(_ store: InMemoryServerStore, _ account: AccountID) throws -> [StoredChangeSet] {
        let query = ChangeSetQuery(account: account, afterCursor: 0, throughCursor: 1_000, limit: 1_000, maxBytes: 1 << 24)
        guard case .changeSets(let rows) = try store.performNow(.changeSets(query)) else { return [] }
        return rows
    }

    /// A commit built on a stale cache writes nothing and answers INTERNAL; the retry reloads
    /// and lands after the other process's change sets. Each process then sends its live
    /// subscribers the other's change sets, read from the store in cursor order, without
    /// echoing a subscriber's own.
    @Test func staleCommitsAreRetriedAndEveryProcessFansOutInCursorOrder() throws {
        let (first, second, store) = twoSharedProcesses()
        var account = TestAccount.make(seed: 90, devices: 2)
        let a = registerWithEveryDevice(account, on: first)
        let b = CoreClient(second)
        #expect(b.login(account, device: 1) != nil)
        _ = a.send(Frames.subscribe(after: 0, id: 3))
        _ = b.send(Frames.subscribe(after: 0, id: 3))

        // The first process commits two change sets; the second hears nothing yet.
        let fromA = [account.next(by: 0, in: conversation(1)), account.next(by: 0, in: conversation(1))]
        let acksA = a.send(Frames.push(fromA, id: 4)).compactMap(\.pushAckBody)
        #expect(acksA.first?.results.map(\.cursor) == [1, 2])

        // The second still believes the head is 0: its commit conflicts and writes nothing.
        let fromB = account.next(by: 1, in: conversation(2))
        let refused = b.send(Frames.push([fromB], id: 5))
        #expect(refused.map(\.errorCode) == [.`internal`])
        #expect(try stored(store, account.account).map(\.cursor) == [1, 2])

        // The retry reloads and lands at cursor 3. Its fanout must not overtake 1 and 2, which
        // b's own process never sent: a fanout read sends them, without b's own change set.
        let retried = b.send(Frames.push([fromB], id: 6))
        #expect(retried.compactMap(\.pushAckBody).first?.results.map(\.cursor) == [3])
        #expect(cursors(retried) == [1, 2])
        #expect(retried.compactMap(\.deliverBody).flatMap(\.items).map { Array($0.changeSet) } == fromA.map(\.wire))

        // The first process hears of cursor 3 and sends it to a, byte for byte.
        #expect(a.receive().isEmpty)
        first.remoteCommit(account.account)
        let live = a.receive().compactMap(\.deliverBody).flatMap(\.items)
        #expect(live.map(\.cursor) == [3])
        #expect(live.map { Array($0.changeSet) } == [fromB.wire])

        // A late announcement of what b already got sends nothing twice.
        second.remoteCommit(account.account)
        #expect(b.receive().isEmpty)
        #expect(try stored(store, account.account).map(\.cursor) == [1, 2, 3])
    }

    /// A GAP or FORK is never answered from a cache another process may have moved on: the
    /// account is read again first. A real gap is still a gap.
    @Test func gapsAndForksAreCheckedAgainstTheStoreBeforeTheyAreAnswered() throws {
        let (first, second, _) = twoSharedProcesses()
        var account = TestAccount.make(seed: 91)
        let a = registerWithEveryDevice(account, on: first)
        let sameDevice = CoreClient(second)
        sameDevice.login(account)  // the second process caches the account at head 0

        let one = account.next(in: conversation(1))
        let two = account.next(in: conversation(1))
        #expect(a.send(Frames.push([one, two], id: 3)).compactMap(\.pushAckBody).count == 1)

        // Seq 3 on the second process, which has not heard of seqs 1 and 2.
        let three = account.next(in: conversation(1))
        let ack = sameDevice.send(Frames.push([three], id: 4)).compactMap(\.pushAckBody).first
        #expect(ack?.results.map(\.cursor) == [3])
        #expect(ack?.results.map(\.error) == [.unspecified])

        // A real gap (seq 5 after 3), decided after a fresh read.
        _ = account.next(in: conversation(1))
        let five = account.next(in: conversation(1))
        let gap = a.send(Frames.push([five], id: 5)).compactMap(\.pushAckBody).first
        #expect(gap?.results.map(\.error) == [.gap])
    }

    /// A device added through one process can authenticate on another that cached the log
    /// before the addition, even before any announcement arrives; a device removed through
    /// one process is refused by the other once the announcement arrives.
    @Test func deviceLogChangesMadeThroughOneProcessHoldOnTheOther() {
        let (first, second, _) = twoSharedProcesses()
        var account = TestAccount.make(seed: 92)
        let owner = registerWithEveryDevice(account, on: first)
        let cached = CoreClient(second)
        cached.login(account)  // the second process now caches the one-device log

        let laptop = TestDevice(seed: 9_201)
        let added = account.addDevice(laptop)
        owner.send(Frames.appendDeviceLog(added, id: 3))
        let newcomer = CoreClient(second)
        #expect(newcomer.login(account, device: 1) != nil)

        let removed = account.removeDevice(1)
        owner.send(Frames.appendDeviceLog(removed, id: 4))
        second.remoteCommit(account.account)
        let refused = CoreClient(second)
        #expect(refused.login(account, device: 1) == nil)
        #expect(refused.closedWith == .deviceNotActive)
    }

    /// A removal committed through one process disconnects the removed device's open session
    /// on the other as soon as the announcement arrives, before anything new reaches it.
    @Test func aDeviceRemovedThroughOneProcessIsDisconnectedFromTheOther() {
        let (first, second, _) = twoSharedProcesses()
        var account = TestAccount.make(seed: 93, devices: 2)
        let owner = registerWithEveryDevice(account, on: first)
        let laptop = CoreClient(second)
        #expect(laptop.login(account, device: 1) != nil)
        _ = laptop.send(Frames.subscribe(after: 0, id: 3))

        owner.send(Frames.appendDeviceLog(account.removeDevice(1), id: 4))
        _ = owner.send(Frames.push([account.next(by: 0, in: conversation(1))], id: 5))
        second.remoteCommit(account.account)
        let after = laptop.receive()
        #expect(laptop.closedWith == .deviceNotActive)
        #expect(after.compactMap(\.deliverBody).isEmpty)
    }

    /// A subscriber that already has cursors up to its `after_cursor` is never sent them again,
    /// even when this process has sent less than that (another process committed them), and it
    /// may acknowledge what a fanout read sent before this process reloaded the account.
    @Test func subscribersGetNothingTwiceAndMayAcknowledgeWhatFanoutReadsSent() {
        let (first, second, _) = twoSharedProcesses()
        var account = TestAccount.make(seed: 94, devices: 2)
        let owner = registerWithEveryDevice(account, on: first)
        let laptop = CoreClient(second)
        laptop.login(account, device: 1)  // the second process caches the account at head 0
        for n in 0..<5 { owner.send(Frames.push([account.next(by: 0, in: conversation(1))], id: 10 + UInt64(n))) }

        let frames = laptop.send(Frames.subscribe(after: 3, id: 3))
        #expect(cursors(frames) == [4, 5])
        let ack = laptop.send(Frames.ackCursor(5, id: 4))
        #expect(ack.map(\.errorCode) == [nil])
        #expect(ack.first?.requestID == 4)
    }

    /// A commit that conflicts also fails what was staged behind it (it built on the rows that
    /// were not written); both pushes get INTERNAL, nothing of them is stored, and their retries
    /// land after the other process's change set.
    @Test func aConflictFailsTheBatchStagedBehindItToo() throws {
        let (first, second, store) = twoSharedProcesses()
        var account = TestAccount.make(seed: 96, devices: 2)
        let owner = registerWithEveryDevice(account, on: first)
        let laptop = CoreClient(second)
        laptop.login(account, device: 1)
        _ = owner.send(Frames.push([account.next(by: 0, in: conversation(1))], id: 3))  // cursor 1, unannounced

        second.autoCommit = false
        let one = account.next(by: 1, in: conversation(2))
        let two = account.next(by: 1, in: conversation(2))
        laptop.send(Frames.push([one], id: 4))
        let (id, batch) = try #require(second.registry.takeBatch())  // in flight
        laptop.send(Frames.push([two], id: 5))  // staged behind it, building on `one`
        let conflicts = try store.commitNow(batch)
        #expect(conflicts == [account.account])
        second.registry.finishBatch(id, error: nil, conflicts: conflicts)
        #expect(!second.commit())  // nothing of the account is left to commit
        let refused = laptop.receive()
        #expect(refused.map(\.errorCode) == [.`internal`, .`internal`])
        #expect(refused.map(\.requestID) == [4, 5])
        #expect(try stored(store, account.account).map(\.cursor) == [1])

        second.autoCommit = true
        let acks = laptop.send(Frames.push([one, two], id: 6)).compactMap(\.pushAckBody)
        #expect(acks.first?.results.map(\.cursor) == [2, 3])
        #expect(try stored(store, account.account).map(\.cursor) == [1, 2, 3])
    }

    /// A version conflict takes out only what depends on the account's version. A mailbox slot
    /// and a cursor acknowledgement staged in the same batch are written anyway: the slot's put
    /// is answered DONE, the fire-and-forget acknowledgement (request id 0) is stored rather than
    /// silently lost, and the push that conflicted still gets INTERNAL and lands on retry.
    @Test func mailboxSlotsAndCursorAcknowledgementsSurviveAVersionConflict() async throws {
        let (first, second, store) = twoSharedProcesses()
        var account = TestAccount.make(seed: 99, devices: 2)
        let owner = registerWithEveryDevice(account, on: first)
        let laptop = CoreClient(second)
        laptop.login(account, device: 1)
        let own = laptop.send(Frames.push([account.next(by: 1, in: conversation(2))], id: 3))
        #expect(own.compactMap(\.pushAckBody).first?.results.map(\.cursor) == [1])
        first.remoteCommit(account.account)
        // Cursor 2 through the first process, not announced to the second.
        let other = owner.send(Frames.push([account.next(by: 0, in: conversation(1))], id: 4))
        #expect(other.compactMap(\.pushAckBody).first?.results.map(\.cursor) == [2])

        second.autoCommit = false
        let stale = account.next(by: 1, in: conversation(2))
        laptop.send(Frames.push([stale], id: 5))
        laptop.send(Frames.ackCursor(1, id: 0))
        var put = Cloak_V1_MailboxPut()
        put.mailboxID = Data([UInt8](repeating: 5, count: 16))
        put.payload = Data([9, 8, 7])
        put.ttlSeconds = 60
        laptop.send(FrameCodec.encode(.mailboxPut(put), requestID: 6))
        let (id, batch) = try #require(second.registry.takeBatch())
        let conflicts = try store.commitNow(batch)
        #expect(conflicts == [account.account])
        second.registry.finishBatch(id, error: nil, conflicts: conflicts)

        let replies = laptop.receive()
        #expect(replies.map(\.requestID) == [5, 6])
        #expect(replies.first?.errorCode == .`internal`)
        #expect(replies.last.map { if case .done = $0.body { true } else { false } } == true)
        let acknowledged = try await store.compactionInput(account.account).acknowledged
        #expect(acknowledged[account.devices[1].id] == 1)
        var take = Cloak_V1_MailboxTake()
        take.mailboxID = put.mailboxID
        let taken = CoreClient(first).send(FrameCodec.encode(.mailboxTake(take), requestID: 7)).first?.body
        guard case .mailboxContent(let content) = taken else {
            Issue.record("the mailbox slot was not stored")
            return
        }
        #expect(Array(content.payload) == [9, 8, 7])

        // Nothing of the account is left in flight: the retry reloads and lands after cursor 2.
        second.autoCommit = true
        #expect(!second.commit())
        let retried = laptop.send(Frames.push([stale], id: 8))
        #expect(retried.compactMap(\.pushAckBody).first?.results.map(\.cursor) == [3])
    }

    /// While this process has writes of the account in flight, a GAP is still answered when the
    /// store confirms nothing follows the cached head; only a head the store shows moved gets
    /// INTERNAL (retry once the writes finish and the account reloaded).
    @Test func gapsAreAnsweredWhileWritesAreInFlight() {
        let (first, second, _) = twoSharedProcesses()
        var account = TestAccount.make(seed: 97, devices: 2)
        let owner = registerWithEveryDevice(account, on: first)
        let phone = CoreClient(second)
        phone.login(account, device: 0)
        let laptop = CoreClient(second)
        laptop.login(account, device: 1)
        _ = owner.send(Frames.push([account.next(by: 0, in: conversation(1))], id: 3))  // unannounced

        second.autoCommit = false
        laptop.send(Frames.push([account.next(by: 1, in: conversation(2))], id: 4))  // in the pending batch
        // A genuine gap in a chain nobody wrote: the store confirms it.
        let somewhere = ChangeSetHash(unchecked: [UInt8](repeating: 7, count: ChangeSetHash.byteCount))
        let fresh = account.make(by: 0, in: conversation(9), seq: 2, prev: somewhere)
        let gap = phone.send(Frames.push([fresh], id: 5)).compactMap(\.pushAckBody).first
        #expect(gap?.results.map(\.error) == [.gap])
        // Seq 3 in the chain the first process moved to seq 1: the store shows the head moved.
        let moved = account.make(by: 0, in: conversation(1), seq: 3, prev: somewhere)
        let retry = phone.send(Frames.push([moved], id: 6))
        #expect(retry.map(\.errorCode) == [.`internal`])
    }

    /// A removal another process committed at the index where this process's own append lost
    /// the race is still enforced: the fanout read sees the cached head is not the stored entry,
    /// reads the whole account, disconnects the removed device, and only then sends anything.
    @Test func aRemovalThatWonTheRaceForALogIndexIsEnforced() throws {
        let (first, second, _) = twoSharedProcesses()
        var account = TestAccount.make(seed: 98, devices: 2)
        let owner = registerWithEveryDevice(account, on: first)
        let phone = CoreClient(second)
        phone.login(account, device: 0)
        let laptop = CoreClient(second)
        laptop.login(account, device: 1)
        _ = laptop.send(Frames.subscribe(after: 0, id: 3))

        // The second process stages an add at index 2 and starts committing it ...
        var other = account
        second.autoCommit = false
        phone.send(Frames.appendDeviceLog(other.addDevice(TestDevice(seed: 9_801)), id: 4))
        let (id, batch) = try #require(second.registry.takeBatch())
        // ... but the first process commits a removal of the laptop at index 2 first.
        owner.send(Frames.appendDeviceLog(account.removeDevice(1), id: 5))
        let conflicts = try second.store.commitNow(batch)
        second.registry.finishBatch(id, error: nil, conflicts: conflicts)
        #expect(conflicts == [account.account])
        second.autoCommit = true

        owner.send(Frames.push([account.next(by: 0, in: conversation(1))], id: 6))
        second.remoteCommit(account.account)
        let frames = laptop.receive()
        #expect(laptop.closedWith == .deviceNotActive)
        #expect(frames.compactMap(\.deliverBody).isEmpty)
    }
}

/// Two processes over one in-memory store (each with its own registry and cache).
func twoSharedProcesses() -> (SynchronousServer, SynchronousServer, InMemoryServerStore) {
    let store = InMemoryServerStore()
    let first = makeServer({ $0.sharedStore = true }, store: store, seed: 1)
    let second = makeServer({ $0.sharedStore = true }, store: store, seed: 2)
    return (first, second, store)
}

/// Registers `account` through `server` and adds every device of its log; returns the owner's
/// client (device 0, logged in).
func registerWithEveryDevice(_ account: TestAccount, on server: SynchronousServer) -> CoreClient {
    let owner = CoreClient(server)
    owner.login(account, register: true)
    for index in account.log.entries.indices.dropFirst() {
        owner.send(Frames.appendDeviceLog(account.log.entries[index], id: 1 + UInt64(index)))
    }
    return owner
}
