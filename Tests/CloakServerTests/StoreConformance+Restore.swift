import CloakCrypto
import CloakProtocol
import CloakServer
import Foundation
import Testing

/// The store parts of ADV-44 healing: anchors, chain heads, replaced copies, and compaction
/// that keeps every device's anchor.
extension StoreConformance {
    static func device(_ byte: UInt8) -> DeviceID { DeviceID(unchecked: [UInt8](repeating: byte, count: 16)) }

    static func anchorsAndHeads(_ store: any ServerStore) async throws {
        let a = TestAccount.make(seed: 180)
        var batch = WriteBatch()
        batch.logEntries = [.init(account: a.account, index: 0, bytes: a.genesis.wire)]
        // Conversations and authors on both sides of 0x80: the order is unsigned, byte by byte.
        let keys: [(UInt8, UInt8)] = [(0x80, 0x01), (0x01, 0xFF), (0x7F, 0x02), (0x01, 0x80), (0xFF, 0x00), (0x7F, 0x01)]
        batch.changeSets = keys.enumerated().map { index, key in row(a.account, UInt64(index + 1), key.0, key.1, 1) }
        batch.changeSets.append(row(a.account, 7, 0x80, 0x01, 2))
        try await store.commit(batch)

        #expect(try await store.cursorAnchor(account: a.account, cursor: 3) == CursorAnchor(headCursor: 7, hash: batch.changeSets[2].hash))
        #expect(try await store.cursorAnchor(account: a.account, cursor: 9) == CursorAnchor(headCursor: 7, hash: nil))
        let unknown = TestAccount.make(seed: 181).account
        #expect(try await store.cursorAnchor(account: unknown, cursor: 1) == CursorAnchor(headCursor: 0, hash: nil))

        let ordered = keys.map { ChainKey(conversation: conversation($0.0), author: device($0.1)) }.sorted()
        let all = try await store.chainHeads(account: a.account, after: nil, limit: 100)
        #expect(all.map(\.chain) == ordered)
        let first = ChainKey(conversation: conversation(0x80), author: device(0x01))
        #expect(all.first { $0.chain == first }?.position == ChainPosition(seq: 2, hash: batch.changeSets[6].hash))
        #expect(try await store.chainHeads(account: a.account, after: nil, limit: 2).map(\.chain) == Array(ordered.prefix(2)))
        let after = try await store.chainHeads(account: a.account, after: ordered[2], limit: 100)
        #expect(after.map(\.chain) == Array(ordered.dropFirst(3)))
        // Strictly after a key that names no chain.
        let between = ChainKey(conversation: conversation(0x7F), author: device(0x00))
        #expect(try await store.chainHeads(account: a.account, after: between, limit: 1).map(\.chain) == [ordered[2]])
        #expect(try await store.chainHeads(account: a.account, after: ordered.last, limit: 100).isEmpty)
        #expect(try await store.chainHeads(account: unknown, after: nil, limit: 100).isEmpty)
    }

    static func replacedCopies(_ store: any ServerStore) async throws {
        let a = TestAccount.make(seed: 182)
        var batch = WriteBatch()
        batch.logEntries = [.init(account: a.account, index: 0, bytes: a.genesis.wire)]
        batch.changeSets = [row(a.account, 1, 1, 1, 1, size: 10), row(a.account, 2, 1, 1, 2, size: 10)]
        // A replacement in the batch that inserts its row applies after the insert.
        batch.replacements = [.init(account: a.account, cursor: 2, hash: batch.changeSets[1].hash, bytes: [2, 2, 2])]
        try await store.commit(batch)
        let chain = ChainKey(conversation: conversation(1), author: device(1))
        let positions = [ChainSeq(chain: chain, seq: 1), ChainSeq(chain: chain, seq: 2)]
        var refs = try await store.changeSetRefs(account: a.account, positions)
        #expect(refs[positions[0]]?.bytes == [UInt8](repeating: 1, count: 10))
        #expect(refs[positions[1]]?.bytes == [2, 2, 2])
        #expect(try await store.account(a.account)?.storedBytes == 13)

        var later = WriteBatch()
        later.replacements = [
            // Grows the row by 5 bytes.
            .init(account: a.account, cursor: 1, hash: batch.changeSets[0].hash, bytes: [UInt8](repeating: 7, count: 15)),
            // Another hash at that cursor: not this change set, left alone.
            .init(account: a.account, cursor: 2, hash: Digest32(hashing: [9]), bytes: [9]),
            // No row at that cursor.
            .init(account: a.account, cursor: 5, hash: batch.changeSets[0].hash, bytes: [5]),
        ]
        try await store.commit(later)
        refs = try await store.changeSetRefs(account: a.account, positions)
        #expect(refs[positions[0]]?.bytes == [UInt8](repeating: 7, count: 15))
        #expect(refs[positions[1]]?.bytes == [2, 2, 2])
        #expect(try await store.account(a.account)?.storedBytes == 18)

        // Compaction drops the bytes; the reference stays (nil bytes) and a replacement of a
        // compacted row writes nothing.
        let dropped = try await store.dropCovered(account: a.account, chain: chain, throughSeq: 1, belowCursor: 2)
        #expect(dropped.count == 1 && dropped.bytes == 15)
        var again = WriteBatch()
        again.replacements = [.init(account: a.account, cursor: 1, hash: batch.changeSets[0].hash, bytes: [1])]
        try await store.commit(again)
        refs = try await store.changeSetRefs(account: a.account, positions)
        #expect(refs[positions[0]] == StoredChangeSetRef(cursor: 1, hash: batch.changeSets[0].hash, bytes: nil))
        #expect(try await store.account(a.account)?.storedBytes == 3)
    }

    /// Compaction drops a covered change set only strictly below the smallest acknowledged
    /// cursor of the active devices: the one at a device's acknowledged cursor keeps its bytes,
    /// so a Subscribe anchored there is still served and checked.
    static func compactionKeepsEveryAnchor(_ store: any ServerStore) async throws {
        var account = TestAccount.make(seed: 183, devices: 2)
        let driver = AsyncDriver(store: store)
        var a = driver.connect(seed: 9)
        #expect(await a.login(account, register: true))
        await a.send(Frames.appendDeviceLog(account.log.entries[1], id: 3))
        _ = await a.reply(to: 3)
        var b = driver.connect(seed: 10)
        #expect(await b.login(account, device: 1))
        let pushed = (0..<5).map { _ in account.next(by: 0, in: conversation(1)) }  // cursors 1…5
        await a.send(Frames.push(pushed, id: 4))
        _ = await a.reply(to: 4)
        let covers = [ChainHead(device: account.devices[0].id, seq: 5, hash: pushed[4].hash)]
        await a.send(Frames.putSnapshot(account.snapshot(in: conversation(1), covers: covers), id: 5))
        _ = await a.reply(to: 5)
        await a.send(Frames.ackCursor(5, id: 6))
        _ = await a.reply(to: 6)
        await b.send(Frames.ackCursor(3, id: 7))
        _ = await b.reply(to: 7)

        let report = try await Compactor.run(store: store, nowMs: 0, logger: quietLogger)
        #expect(report.changeSetsDropped == 2)
        let present = try await store.changeSets(
            ChangeSetQuery(account: account.account, afterCursor: 0, throughCursor: .max, limit: 100, maxBytes: 1 << 24))
        #expect(present.map(\.cursor) == [3, 4, 5])
        #expect(present.first?.bytes == pushed[2].wire)
        // Device 1's anchor is checkable and served from: the catch-up after it is complete.
        await b.send(Frames.subscribe(after: 3, anchor: pushed[2].hash.bytes, id: 8))
        let caughtUp = await b.reply(to: 8)?.deliverBody
        #expect(caughtUp?.items.map(\.cursor) == [4, 5])
        await driver.stop()
    }
}

extension StoreConformance {
    /// The operator's view and actions (`cloak-server accounts`), the same on every store.
    static func administration(_ store: any ServerStore) async throws {
        let a = TestAccount.make(seed: 184, devices: 2)
        let b = TestAccount.make(seed: 185)
        var batch = WriteBatch()
        batch.logEntries = [
            .init(account: a.account, index: 0, bytes: a.genesis.wire), .init(account: a.account, index: 1, bytes: a.log.entries[1].wire),
            .init(account: b.account, index: 0, bytes: b.genesis.wire),
        ]
        batch.changeSets = [row(a.account, 1, 1, 1, 1, size: 40), row(a.account, 2, 1, 1, 2, size: 60)]
        batch.envelopes = [.init(account: a.account, recipient: a.devices[1].id, epoch: 1, bytes: [1, 2, 3, 4])]
        batch.cursorAcks = [.init(account: a.account, device: a.devices[0].id, cursor: 2)]
        batch.recoveries = [RecoveryRecord(account: a.account, recoveryKeyID: device(9), bytes: [7])]
        batch.committedAtMs = 1_750_000_000_000
        try await store.commit(batch)

        let summary = try #require(try await store.accountSummary(a.account))
        #expect(summary.storedBytes == 104 && summary.changeSets == 2 && summary.headCursor == 2)
        #expect(summary.deviceLog == a.log.entries.map(\.wire) && summary.lastWriteMs == 1_750_000_000_000 && !summary.blocked)
        let listed = try await store.accountSummaries(after: nil, limit: 10).map(\.account)
        #expect(listed == [a.account, b.account].sorted())
        #expect(try await store.accountSummaries(after: listed[0], limit: 10).map(\.account) == [listed[1]])
        let usage = try await store.usage()
        #expect(usage.accounts == 2 && usage.storedBytes == 104)

        #expect(try await store.setBlocked(b.account, blocked: true))
        #expect(try await !store.setBlocked(TestAccount.make(seed: 186).account, blocked: true))
        #expect(try await store.account(b.account)?.blocked == true)
        let missing = TestAccount.make(seed: 187).account
        #expect(try await store.accessStates([a.account, b.account, missing]) == [a.account: false, b.account: true])

        let report = try await store.eraseAccount(a.account)
        #expect(report.rows == [
            "change_sets": 2, "chains": 1, "device_log": 2, "key_envelopes": 1, "recoveries": 1, "cursor_acks": 1, "accounts": 1,
        ])
        #expect(try await store.account(a.account) == nil)
        #expect(try await store.accountSummary(a.account) == nil)
        #expect(try await store.recovery(.recoveryKey(device(9))) == nil)
        #expect(try await store.eraseAccount(a.account).total == 0)
        #expect(try await store.accessStates([a.account]) == [:])
        #expect(try await store.usage().accounts == 1)
    }
}
