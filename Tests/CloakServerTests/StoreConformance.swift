import CloakCrypto
import CloakProtocol
import CloakServer
import Foundation
import Testing

/// One suite, every store (STYLE.md rule 11): the batch rules and reads directly, and the sync
/// core's guarantees (duplicates, forks, gaps, cursor order, hand-off, compaction, concurrent
/// pushes) through the core over the store.
enum StoreCheck: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case appendAndReadRanges, batchRules, duplicateForkAndGap, cursorsAreMonotonic, handOffWhenTheHeadMoves
    case compactionNeverRemovesAnUncoveredChangeSet, concurrentPushesLoseNothing, staleVersionsWriteNothing
    case anchorsAndHeadsADV44, replacedCopiesADV44, compactionKeepsEveryAnchorADV44, administration
    case conversationKeysADV49, assistantKeysThroughTheServerADV49

    var testDescription: String { rawValue }

    func run(on store: any ServerStore) async throws {
        switch self {
        case .appendAndReadRanges: try await StoreConformance.appendAndReadRanges(store)
        case .batchRules: try await StoreConformance.batchRules(store)
        case .duplicateForkAndGap: try await StoreConformance.duplicateForkAndGap(store)
        case .cursorsAreMonotonic: try await StoreConformance.cursorsAreMonotonic(store)
        case .handOffWhenTheHeadMoves: try await StoreConformance.handOffWhenTheHeadMoves(store)
        case .compactionNeverRemovesAnUncoveredChangeSet: try await StoreConformance.compaction(store)
        case .concurrentPushesLoseNothing: try await StoreConformance.concurrentPushes(store)
        case .staleVersionsWriteNothing: try await StoreConformance.staleVersionsWriteNothing(store)
        case .anchorsAndHeadsADV44: try await StoreConformance.anchorsAndHeads(store)
        case .replacedCopiesADV44: try await StoreConformance.replacedCopies(store)
        case .compactionKeepsEveryAnchorADV44: try await StoreConformance.compactionKeepsEveryAnchor(store)
        case .administration: try await StoreConformance.administration(store)
        case .conversationKeysADV49: try await StoreConformance.conversationKeys(store)
        case .assistantKeysThroughTheServerADV49: try await StoreConformance.assistantKeysThroughTheServer(store)
        }
    }
}

@Suite struct InMemoryStoreConformance {
    @Test(arguments: StoreCheck.allCases)
    func check(_ check: StoreCheck) async throws {
        try await check.run(on: InMemoryServerStore())
    }
}

@Suite struct SQLiteStoreConformance {
    @Test(arguments: StoreCheck.allCases)
    func check(_ check: StoreCheck) async throws {
        let (store, cleanup) = try await TestStores.sqlite()
        do { try await check.run(on: store) } catch {
            await cleanup()
            throw error
        }
        await cleanup()
    }
}

@Suite(.requiresPostgres)
struct PostgresStoreConformance {
    @Test(arguments: StoreCheck.allCases)
    func check(_ check: StoreCheck) async throws {
        let (store, cleanup) = try await TestStores.postgres()
        do { try await check.run(on: store) } catch {
            await cleanup()
            throw error
        }
        await cleanup()
    }
}

enum StoreConformance {
    static func row(_ account: AccountID, _ cursor: UInt64, _ conv: UInt8, _ author: UInt8, _ seq: UInt64, size: Int = 10)
        -> WriteBatch.ChangeSetRow
    {
        WriteBatch.ChangeSetRow(
            account: account, cursor: cursor,
            chain: ChainKey(conversation: conversation(conv), author: DeviceID(unchecked: [UInt8](repeating: author, count: 16))),
            seq: seq, hash: Digest32(hashing: [UInt8(cursor), conv, author]),
            bytes: [UInt8](repeating: UInt8(truncatingIfNeeded: cursor), count: size))
    }

    static func appendAndReadRanges(_ store: any ServerStore) async throws {
        let a = TestAccount.make(seed: 100)
        let b = TestAccount.make(seed: 101)
        var batch = WriteBatch()
        batch.logEntries = [
            .init(account: a.account, index: 0, bytes: a.genesis.wire), .init(account: b.account, index: 0, bytes: b.genesis.wire),
        ]
        batch.changeSets = [row(a.account, 1, 1, 1, 1), row(a.account, 2, 2, 1, 1), row(a.account, 3, 1, 1, 2, size: 30)]
        batch.changeSets += [row(b.account, 1, 1, 1, 1)]
        try await store.commit(batch)
        var second = WriteBatch()
        second.changeSets = [row(a.account, 4, 1, 2, 1), row(a.account, 5, 1, 1, 3)]
        try await store.commit(second)

        let record = try #require(try await store.account(a.account))
        #expect(record.headCursor == 5)
        #expect(record.deviceLog == [a.genesis.wire])
        #expect(record.storedBytes == 10 + 10 + 30 + 10 + 10)
        let chain = ChainKey(conversation: conversation(1), author: DeviceID(unchecked: [UInt8](repeating: 1, count: 16)))
        #expect(record.chains[chain] == ChainPosition(seq: 3, hash: row(a.account, 5, 1, 1, 3).hash))
        #expect(try await store.account(TestAccount.make(seed: 102).account) == nil)

        func cursors(_ query: ChangeSetQuery) async throws -> [UInt64] { try await store.changeSets(query).map(\.cursor) }
        #expect(try await cursors(.init(account: a.account, afterCursor: 0, throughCursor: 5, limit: 10, maxBytes: 1 << 20)) == [1, 2, 3, 4, 5])
        #expect(try await cursors(.init(account: a.account, afterCursor: 2, throughCursor: 4, limit: 10, maxBytes: 1 << 20)) == [3, 4])
        #expect(try await cursors(.init(account: a.account, afterCursor: 0, throughCursor: 5, limit: 2, maxBytes: 1 << 20)) == [1, 2])
        #expect(try await cursors(.init(account: a.account, afterCursor: 0, throughCursor: 5, limit: 10, maxBytes: 15)) == [1])
        #expect(try await cursors(.init(account: a.account, afterCursor: 0, throughCursor: 5, limit: 10, maxBytes: 1)) == [1])
        #expect(
            try await cursors(
                .init(account: a.account, afterCursor: 0, throughCursor: 5, conversations: [conversation(2)], limit: 10, maxBytes: 1 << 20))
                == [2])
        let page = try await store.changeSets(.init(account: a.account, afterCursor: 2, throughCursor: 3, limit: 10, maxBytes: 1 << 20))
        #expect(page.first?.bytes == [UInt8](repeating: 3, count: 30))
        let range = try await store.changeSets(account: a.account, chain: chain, seqs: 2...3, maxBytes: 1 << 20)
        #expect(range.map(\.cursor) == [3, 5])
        let refs = try await store.changeSetRefs(account: a.account, [ChainSeq(chain: chain, seq: 2), ChainSeq(chain: chain, seq: 9)])
        #expect(
            refs == [
                ChainSeq(chain: chain, seq: 2): StoredChangeSetRef(
                    cursor: 3, hash: row(a.account, 3, 1, 1, 2).hash, bytes: [UInt8](repeating: 3, count: 30))
            ])
        #expect(try await store.deviceLog(a.account, fromIndex: 1) == [])
        #expect(try await store.deviceLog(TestAccount.make(seed: 103).account, fromIndex: 0) == nil)
        let listed = try await store.accounts(after: nil, limit: 10)
        #expect(listed == [a.account, b.account].sorted())
        #expect(try await store.accounts(after: listed[0], limit: 10) == [listed[1]])
    }

    /// Server processes sharing a store: a batch's rows of an account whose version moved are
    /// not written and the account is reported; the other accounts' rows commit. A cursor
    /// acknowledgement does not depend on the version (the registry checked it against a head
    /// already committed): it is written either way.
    static func staleVersionsWriteNothing(_ store: any ServerStore) async throws {
        let a = TestAccount.make(seed: 170, devices: 2)
        let b = TestAccount.make(seed: 171, devices: 2)
        var create = WriteBatch()
        create.logEntries = [
            .init(account: a.account, index: 0, bytes: a.genesis.wire), .init(account: b.account, index: 0, bytes: b.genesis.wire),
        ]
        create.accountVersions = [a.account: .init(expected: 0, next: 1), b.account: .init(expected: 0, next: 1)]
        #expect(try await store.commit(create) == [])
        #expect(try await store.account(a.account)?.version == 1)

        var batch = WriteBatch()
        batch.logEntries = [.init(account: b.account, index: 1, bytes: b.log.entries[1].wire)]
        batch.changeSets = [row(a.account, 1, 1, 1, 1), row(b.account, 1, 1, 1, 1), row(b.account, 2, 1, 1, 2)]
        batch.envelopes = [.init(account: b.account, recipient: b.devices[1].id, epoch: 1, bytes: [1, 2, 3])]
        batch.cursorAcks = [.init(account: b.account, device: b.devices[0].id, cursor: 2)]
        batch.accountVersions = [a.account: .init(expected: 1, next: 2), b.account: .init(expected: 0, next: 5)]
        #expect(try await store.commit(batch) == [b.account])

        let moved = try #require(try await store.account(a.account))
        #expect(moved.version == 2 && moved.headCursor == 1)
        let untouched = try #require(try await store.account(b.account))
        #expect(untouched.version == 1 && untouched.headCursor == 0 && untouched.storedBytes == 0)
        #expect(untouched.deviceLog == [b.genesis.wire] && untouched.chains.isEmpty)
        #expect(try await store.keyEnvelopes(account: b.account, recipient: b.devices[1].id, fromEpoch: 0).isEmpty)
        #expect(try await store.compactionInput(b.account).acknowledged == [b.devices[0].id: 2])

        // A batch without checks (one server process) writes whatever the version.
        var plain = WriteBatch()
        plain.changeSets = [row(b.account, 1, 1, 1, 1)]
        #expect(try await store.commit(plain) == [])
        #expect(try await store.account(b.account)?.headCursor == 1)
        #expect(try await store.account(b.account)?.version == 1)
    }

    static func batchRules(_ store: any ServerStore) async throws {
        let a = TestAccount.make(seed: 110, devices: 2)
        let recipient = a.devices[1].id
        var batch = WriteBatch()
        batch.logEntries = [.init(account: a.account, index: 0, bytes: a.genesis.wire)]
        batch.envelopes = [.init(account: a.account, recipient: recipient, epoch: 1, bytes: [1, 1])]
        batch.snapshots = [.init(account: a.account, conversation: conversation(1), hash: Digest32(hashing: [1]), bytes: [9, 9, 9])]
        batch.cursorAcks = [.init(account: a.account, device: recipient, cursor: 7)]
        batch.recoveries = [RecoveryRecord(account: a.account, recoveryKeyID: DeviceID(unchecked: [UInt8](repeating: 5, count: 16)), bytes: [1])]
        batch.mailboxes = [.init(id: [UInt8](repeating: 1, count: 16), payload: [42], expiresAtMs: 10_000)]
        try await store.commit(batch)
        // Counted guesses and the notice of guesses before a success (PROTOCOL.md §22).
        var counted = WriteBatch()
        counted.recoveryCounters = [.init(account: a.account, failures: 3, lastAttemptMs: 40, noticeFailures: 2, noticeAtMs: 30)]
        try await store.commit(counted)
        let guessed = try await store.recovery(.account(a.account))
        #expect(guessed?.failures == 3 && guessed?.lastAttemptMs == 40)
        #expect(guessed?.noticeFailures == 2 && guessed?.noticeAtMs == 30)
        var again = WriteBatch()
        // Idempotent log entry, first envelope wins, snapshot replaces, acks only move forward.
        again.logEntries = [.init(account: a.account, index: 0, bytes: [0xFF])]
        again.envelopes = [.init(account: a.account, recipient: recipient, epoch: 1, bytes: [2, 2, 2, 2])]
        again.snapshots = [.init(account: a.account, conversation: conversation(1), hash: Digest32(hashing: [2]), bytes: [8])]
        again.cursorAcks = [.init(account: a.account, device: recipient, cursor: 3)]
        again.recoveries = [RecoveryRecord(account: a.account, recoveryKeyID: DeviceID(unchecked: [UInt8](repeating: 6, count: 16)), bytes: [2])]
        try await store.commit(again)

        let record = try #require(try await store.account(a.account))
        #expect(record.deviceLog == [a.genesis.wire])
        #expect(record.storedBytes == 2 + 1)
        #expect(record.newestSnapshots == [conversation(1): Digest32(hashing: [2])])
        #expect(try await store.keyEnvelopes(account: a.account, recipient: recipient, fromEpoch: 1) == [[1, 1]])
        #expect(try await store.keyEnvelopes(account: a.account, recipient: recipient, fromEpoch: 2) == [])
        #expect(try await store.newestSnapshots(account: a.account, conversations: []) == [[8]])
        #expect(try await store.newestSnapshots(account: a.account, conversations: [conversation(2)]) == [])
        #expect(try await store.compactionInput(a.account).acknowledged == [recipient: 7])
        // A new blob restarts the count and keeps the notice.
        let replaced = try await store.recovery(.account(a.account))
        #expect(replaced?.bytes == [2] && replaced?.failures == 0)
        #expect(replaced?.noticeFailures == 2 && replaced?.noticeAtMs == 30)
        #expect(try await store.recovery(.recoveryKey(DeviceID(unchecked: [UInt8](repeating: 6, count: 16))))?.account == a.account)
        #expect(try await store.recovery(.recoveryKey(DeviceID(unchecked: [UInt8](repeating: 5, count: 16)))) == nil)
        let mailbox = [UInt8](repeating: 1, count: 16)
        #expect(try await store.takeMailbox(mailbox, nowMs: 5_000) == [42])
        #expect(try await store.takeMailbox(mailbox, nowMs: 5_000) == nil)
        var expiring = WriteBatch()
        expiring.mailboxes = [.init(id: mailbox, payload: [1], expiresAtMs: 10_000), .init(id: [UInt8](repeating: 2, count: 16), payload: [2], expiresAtMs: 10_000)]
        try await store.commit(expiring)
        #expect(try await store.takeMailbox(mailbox, nowMs: 10_000) == nil)
        #expect(try await store.purgeMailboxes(nowMs: 10_001) == 1)
        try await store.ping()
    }

    static func duplicateForkAndGap(_ store: any ServerStore) async throws {
        var account = TestAccount.make(seed: 120)
        let first = account.next(in: conversation(1))
        let second = account.next(in: conversation(1))
        do {
            let driver = AsyncDriver(store: store)
            var client = driver.connect(seed: 1)
            #expect(await client.login(account, register: true))
            await client.send(Frames.push([first, second], id: 3))
            #expect(await client.reply(to: 3)?.pushAckBody?.results.map(\.cursor) == [1, 2])
            await driver.stop()
        }
        // A new incarnation: the chain positions behind the head come from the store.
        let driver = AsyncDriver(store: store)
        var client = driver.connect(seed: 2)
        #expect(await client.login(account))
        let fork = account.make(by: 0, in: conversation(1), seq: 2, prev: first.hash)
        let gap = account.make(by: 0, in: conversation(1), seq: 4, prev: second.hash)
        let third = account.next(in: conversation(1))
        await client.send(Frames.push([second, fork, gap, third], id: 4))
        let results = await client.reply(to: 4)?.pushAckBody?.results ?? []
        #expect(results.map(\.error) == [.unspecified, .fork, .gap, .unspecified])
        #expect(results.map(\.cursor) == [2, 0, 0, 3])
        #expect(results.map(\.duplicate) == [true, false, false, false])
        await driver.stop()
    }

    static func cursorsAreMonotonic(_ store: any ServerStore) async throws {
        var account = TestAccount.make(seed: 130)
        let driver = AsyncDriver(store: store)
        var client = driver.connect(seed: 3)
        #expect(await client.login(account, register: true))
        var assigned: [UInt64] = []
        for i in 0..<6 {
            let batch = (0..<3).map { _ in account.next(in: conversation(UInt8(i % 3))) }
            await client.send(Frames.push(batch, id: 10 + UInt64(i)))
            assigned += await client.reply(to: 10 + UInt64(i))?.pushAckBody?.results.map(\.cursor) ?? []
        }
        #expect(assigned == Array(1...18))
        let stored = try await store.changeSets(
            ChangeSetQuery(account: account.account, afterCursor: 0, throughCursor: .max, limit: 100, maxBytes: 1 << 24))
        #expect(stored.map(\.cursor) == Array(1...18))
        await driver.stop()
    }

    static func handOffWhenTheHeadMoves(_ store: any ServerStore) async throws {
        var account = TestAccount.make(seed: 140, devices: 2)
        var configuration = ServerConfiguration()
        configuration.limits.maxCatchUpBatch = 2
        let driver = AsyncDriver(store: store, configuration: configuration)
        var writer = driver.connect(seed: 4)
        #expect(await writer.login(account, register: true))
        await writer.send(Frames.appendDeviceLog(account.log.entries[1], id: 3))
        _ = await writer.reply(to: 3)
        for i in 0..<3 {
            await writer.send(Frames.push([account.next(in: conversation(1))], id: 10 + UInt64(i)))
            _ = await writer.reply(to: 10 + UInt64(i))
        }
        var reader = driver.connect(seed: 5)
        #expect(await reader.login(account, device: 1))
        // Drive the reader's catch-up by hand and commit new change sets between its pages.
        var read = reader.machine.receive(Frames.subscribe(after: 0, id: 7), nowMs: 3_000)
        var extra = 0
        while let next = read {
            if extra < 2 {
                extra += 1
                await writer.send(Frames.push([account.next(in: conversation(1))], id: 20 + UInt64(extra)))
                _ = await writer.reply(to: 20 + UInt64(extra))
            }
            read = reader.machine.readCompleted(try await store.perform(next), nowMs: 3_000)
        }
        await writer.send(Frames.push([account.next(in: conversation(1))], id: 30))
        _ = await writer.reply(to: 30)
        var seen: [UInt64] = []
        var caughtUp: [Bool] = []
        while seen.count < 6, let frame = await reader.next() {
            guard let deliver = frame.deliverBody else { continue }
            seen += deliver.items.map(\.cursor)
            caughtUp.append(deliver.caughtUp)
        }
        #expect(seen == [1, 2, 3, 4, 5, 6])
        #expect(caughtUp.dropLast().dropLast().allSatisfy { !$0 })
        #expect(caughtUp.suffix(2) == [true, true])
        await driver.stop()
    }
}
