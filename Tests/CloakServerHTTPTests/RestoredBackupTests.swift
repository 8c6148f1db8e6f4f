import CloakCrypto
import CloakProtocol
import CloakServerHTTP
import CloakTesting
import Foundation
import Testing

/// ADV-44 over real sockets: anchors, heads and restore pushes through `/v1/sync`, and a real
/// SQLite database file copied under a stopped `cloak-server` and restored later.
@Suite(.timeLimit(.minutes(3))) struct RestoredBackupTests {
    @Test func adv44AWrongAnchorIsACursorMismatchOverTheWebSocketAndTheConnectionStaysOpen() async throws {
        try await withServer { server in
            var account = TestAccount.make(seed: 560, devices: 2)
            let owner = try await WebSocketTestClient.owner(of: account, port: server.port)
            let pushed = (0..<2).map { _ in account.next(in: conversation(1)) }
            try await owner.send(Frames.push(pushed, id: 4))
            #expect(try await owner.reply().pushAckBody?.results.map(\.cursor) == [1, 2])
            try await owner.send(Frames.subscribe(after: 1, anchor: pushed[1].hash.bytes, id: 5))
            let refused = try await owner.reply()
            #expect(refused.requestID == 5 && refused.errorCode == .cursorMismatch)
            // Still open: the heads and a restore push by device 1's chain are answered.
            try await owner.send(Frames.fetchHeads(id: 6))
            #expect(try await owner.reply().chainHeadsBody?.heads.map(\.seq) == [2])
            try await owner.send(Frames.restore([account.next(by: 1, in: conversation(2))], id: 7))
            #expect(try await owner.reply().pushAckBody?.results.map(\.cursor) == [3])
            await owner.close()
        }
    }

    /// The operator's disaster recovery, end to end: the database file is copied while the
    /// server is stopped, the server writes more, the copy is put back and the server restarts.
    /// A device that processed the lost cursor is refused with CURSOR_MISMATCH, catches up from
    /// 0, and its restore push re-fills what the server lost; another device's heads then show it.
    @Test func adv44ARestoredDatabaseFileIsDetectedAndRefilledByRestorePushes() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-adv44-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("cloak.sqlite")
        let backup = directory.appendingPathComponent("backup.sqlite")
        let database = "sqlite:" + file.path
        var account = TestAccount.make(seed: 570, devices: 2)
        let early = (0..<3).map { _ in account.next(in: conversation(1)) }
        let late = (0..<2).map { _ in account.next(in: conversation(1)) } + [account.next(by: 1, in: conversation(2))]

        var server = try await ServerProcess.start(database: database)
        do {
            let owner = try await WebSocketTestClient.owner(of: account, port: server.port)
            try await owner.send(Frames.push(early, id: 4))
            #expect(try await owner.reply().pushAckBody?.results.map(\.cursor) == [1, 2, 3])
            await owner.close()
        }
        await server.terminate()
        // A stopped server leaves one complete file (its WAL is checkpointed at shutdown).
        try FileManager.default.copyItem(at: file, to: backup)

        server = try await ServerProcess.start(database: database)
        do {
            let device0 = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await device0.login(account))
            try await device0.send(Frames.push(Array(late.prefix(2)), id: 5))
            #expect(try await device0.reply().pushAckBody?.results.map(\.cursor) == [4, 5])
            let device1 = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await device1.login(account, device: 1))
            try await device1.send(Frames.push([late[2]], id: 6))
            #expect(try await device1.reply().pushAckBody?.results.map(\.cursor) == [6])
            await device0.close()
            await device1.close()
        }
        await server.terminate()
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: file.path + suffix)
        }
        try FileManager.default.copyItem(at: backup, to: file)

        server = try await ServerProcess.start(database: database)
        let device0 = try await WebSocketTestClient.connect(port: server.port)
        #expect(try await device0.login(account))
        // Device 0 processed cursor 6 (device 1's change set): the server no longer has it.
        try await device0.send(Frames.subscribe(after: 6, anchor: late[2].hash.bytes, id: 7))
        #expect(try await device0.reply().errorCode == .cursorMismatch)
        let held = try await catchUp(device0, after: 0, id: 8)
        #expect(held == early.map(\.wire))
        // Heal: re-upload everything held above the server's heads, its own and device 1's.
        try await device0.send(Frames.restore(late, id: 9))
        let healed = try await device0.reply().pushAckBody?.results
        #expect(healed?.map(\.error) == [.unspecified, .unspecified, .unspecified])
        #expect(healed?.map(\.cursor) == [4, 5, 6])
        let device1 = try await WebSocketTestClient.connect(port: server.port)
        #expect(try await device1.login(account, device: 1))
        try await device1.send(Frames.fetchHeads(id: 10))
        let heads = try await device1.reply().chainHeadsBody?.heads
        #expect(heads?.map(\.seq).sorted() == [1, 5])
        #expect(try await catchUp(device1, after: 0, id: 11) == (early + late).map(\.wire))
        await device0.close()
        await device1.close()
        await server.terminate()
    }

    /// Subscribes after `cursor` and returns the bytes up to `caught_up`.
    private func catchUp(_ client: WebSocketTestClient, after cursor: UInt64, id: UInt64) async throws -> [[UInt8]] {
        try await client.send(Frames.subscribe(after: cursor, id: id))
        var items: [[UInt8]] = []
        while true {
            let frame = try await client.reply()
            guard let deliver = frame.deliverBody, frame.requestID == id else { continue }
            items += deliver.items.map { Array($0.changeSet) }
            if deliver.caughtUp { return items }
        }
    }
}
