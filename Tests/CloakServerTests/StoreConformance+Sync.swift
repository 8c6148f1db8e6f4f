import CloakCrypto
import CloakProtocol
import CloakServer
import Foundation
import Testing

extension StoreConformance {
    static func compaction(_ store: any ServerStore) async throws {
        var account = TestAccount.make(seed: 150, devices: 2)
        let driver = AsyncDriver(store: store)
        var a = driver.connect(seed: 6)
        #expect(await a.login(account, register: true))
        await a.send(Frames.appendDeviceLog(account.log.entries[1], id: 3))
        _ = await a.reply(to: 3)
        var b = driver.connect(seed: 7)
        #expect(await b.login(account, device: 1))
        let a1 = (0..<5).map { _ in account.next(by: 0, in: conversation(1)) }  // cursors 1…5
        await a.send(Frames.push(a1, id: 4))
        _ = await a.reply(to: 4)
        let b1 = (0..<2).map { _ in account.next(by: 1, in: conversation(1)) }  // 6, 7
        await b.send(Frames.push(b1, id: 5))
        _ = await b.reply(to: 5)
        let a2 = (0..<3).map { _ in account.next(by: 0, in: conversation(2)) }  // 8…10 (never covered)
        await a.send(Frames.push(a2, id: 6))
        _ = await a.reply(to: 6)
        // The snapshot covers device 0 up to seq 3 and device 1 up to seq 1 in conversation 1,
        // and claims a position of a device that has no such change set (ignored).
        let covers = [
            ChainHead(device: account.devices[0].id, seq: 3, hash: a1[2].hash),
            ChainHead(device: account.devices[1].id, seq: 1, hash: b1[0].hash),
            ChainHead(device: TestDevice(seed: 31_337).id, seq: 2, hash: .zero),
        ]
        await a.send(Frames.putSnapshot(account.snapshot(in: conversation(1), covers: covers), id: 7))
        #expect(await a.reply(to: 7).map { if case .done = $0.body { true } else { false } } == true)
        let before = try #require(try await store.account(account.account)).storedBytes

        func present() async throws -> [UInt64] {
            try await store.changeSets(
                ChangeSetQuery(account: account.account, afterCursor: 0, throughCursor: .max, limit: 100, maxBytes: 1 << 24)
            ).map(\.cursor)
        }
        // Nobody acknowledged anything: nothing goes.
        _ = try await Compactor.run(store: store, nowMs: 0, logger: quietLogger)
        #expect(try await present() == Array(1...10))
        // Device 0 acknowledged everything, device 1 only cursor 2: strictly below it goes.
        await a.send(Frames.ackCursor(10, id: 8))
        _ = await a.reply(to: 8)
        await b.send(Frames.ackCursor(2, id: 9))
        _ = await b.reply(to: 9)
        var report = try await Compactor.run(store: store, nowMs: 0, logger: quietLogger)
        #expect(report.changeSetsDropped == 1)
        #expect(try await present() == [2, 3, 4, 5, 6, 7, 8, 9, 10])
        await b.send(Frames.ackCursor(10, id: 10))
        _ = await b.reply(to: 10)
        report = try await Compactor.run(store: store, nowMs: 0, logger: quietLogger)
        #expect(report.changeSetsDropped == 3)
        #expect(try await present() == [4, 5, 7, 8, 9, 10])
        let after = try #require(try await store.account(account.account)).storedBytes
        #expect(after == before - Int64(a1[0...2].reduce(0) { $0 + $1.wire.count } + b1[0].wire.count))
        // Chain checks still answer for dropped change sets: a re-push is a duplicate.
        await a.send(Frames.push([a1[0]], id: 11))
        let again = await a.reply(to: 11)?.pushAckBody?.results.first
        #expect(again?.duplicate == true && again?.cursor == 1)
        await driver.stop()
    }

    static func concurrentPushes(_ store: any ServerStore) async throws {
        let devices = 8
        let pushes = 12
        let perPush = 4
        var account = TestAccount.make(seed: 160, devices: devices)
        let driver = AsyncDriver(store: store)
        var owner = driver.connect(seed: 8)
        #expect(await owner.login(account, register: true))
        for index in 1..<devices {
            await owner.send(Frames.appendDeviceLog(account.log.entries[index], id: 100 + UInt64(index)))
            _ = await owner.reply(to: 100 + UInt64(index))
        }
        var work: [[[ChangeSet]]] = []
        for device in 0..<devices {
            work.append((0..<pushes).map { push in
                (0..<perPush).map { _ in account.next(by: device, in: conversation(UInt8(push % 2))) }
            })
        }
        let snapshot = account
        let acked = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for device in 0..<devices {
                let batches = work[device]
                group.addTask {
                    var client = driver.connect(seed: 1_000 + UInt64(device))
                    guard await client.login(snapshot, device: device) else { return [] }
                    var cursors: [UInt64] = []
                    for (n, batch) in batches.enumerated() {
                        await client.send(Frames.push(batch, id: 10 + UInt64(n)))
                        cursors += await client.reply(to: 10 + UInt64(n))?.pushAckBody?.results.map(\.cursor) ?? []
                    }
                    return cursors
                }
            }
            var all: [UInt64] = []
            for try await cursors in group { all += cursors }
            return all
        }
        let total = devices * pushes * perPush
        #expect(acked.sorted() == Array(1...UInt64(total)))
        let stored = try await store.changeSets(
            ChangeSetQuery(account: account.account, afterCursor: 0, throughCursor: .max, limit: total + 10, maxBytes: 1 << 26))
        #expect(stored.map(\.cursor) == Array(1...UInt64(total)))
        let wires = Set(work.flatMap { $0.flatMap { $0.map(\.wire) } })
        #expect(Set(stored.map(\.bytes)) == wires)
        await driver.stop()
    }
}
