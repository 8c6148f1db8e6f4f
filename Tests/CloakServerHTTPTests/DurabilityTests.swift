import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

/// ADV-19: acknowledged means durable. The real executable is killed with SIGKILL in the
/// middle of a stream of pipelined pushes; after a restart every acknowledged change set is
/// there, in push order, and the client resumes from its cursor.
@Suite(.timeLimit(.minutes(3))) struct DurabilityTests {
    @Test func killMinus9DuringPushesLosesNothingAcknowledged() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-kill9-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = "sqlite:" + directory.appendingPathComponent("cloak.sqlite").path
        let arguments = ["--max-pushes-per-second", "100000"]
        var account = TestAccount.make(seed: 700)
        let changeSets = (0..<400).map { account.next(in: conversation(UInt8($0 % 3)), bodyBytes: 512) }

        var server = try await ServerProcess.start(database: database, extraArguments: arguments)
        var acked: [Int: UInt64] = [:]
        do {
            let client = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await client.login(account, register: true))
            // Pipelined: no waiting for acks; kill the server while commits are in flight.
            for (index, changeSet) in changeSets.enumerated() {
                try await client.send(Frames.push([changeSet], id: 10_000 + UInt64(index)))
                if index == 250 { break }
                if index == 200 {
                    while acked.count < 50 { record(try await client.reply(), into: &acked) }
                }
            }
            await server.kill9()
            // Acks that made it out before the kill.
            while case .frame(let frame) = try await client.next() { record(frame, into: &acked) }
            await client.close()
        }
        #expect(acked.count >= 50)
        #expect(acked.count <= 251)

        server = try await ServerProcess.start(database: database, extraArguments: arguments)
        let reader = try await WebSocketTestClient.connect(port: server.port)
        #expect(try await reader.login(account))
        let stored = try await catchUp(reader, after: 0)
        // Everything acknowledged is stored, at its acknowledged cursor, byte for byte …
        let byCursor = Dictionary(uniqueKeysWithValues: stored.map { ($0.cursor, $0.bytes) })
        for (index, cursor) in acked { #expect(byCursor[cursor] == changeSets[index].wire, "change set \(index)") }
        // … in push order (each chain is a prefix of what was pushed, cursors increasing).
        let storedIndexes = stored.compactMap { item in changeSets.firstIndex { $0.wire == item.bytes } }
        #expect(storedIndexes == Array(0..<stored.count))
        #expect(stored.map(\.cursor) == stored.map(\.cursor).sorted())

        // The client resumes from its last acknowledged cursor and re-pushes everything it has
        // no ack for: stored ones come back as duplicates, the rest are accepted.
        let resumeCursor = acked.values.max() ?? 0
        let tail = try await catchUp(reader, after: resumeCursor)
        #expect(tail.count == stored.filter { $0.cursor > resumeCursor }.count)
        let firstUnacked = (0..<changeSets.count).first { acked[$0] == nil } ?? changeSets.count
        var duplicates = 0
        for index in firstUnacked..<changeSets.count {
            try await reader.send(Frames.push([changeSets[index]], id: 50_000 + UInt64(index)))
            let result = try await reader.reply().pushAckBody?.results.first
            #expect(result?.error == .unspecified, "re-push \(index)")
            if result?.duplicate == true { duplicates += 1 }
        }
        #expect(duplicates == stored.count - firstUnacked)
        let complete = try await catchUp(reader, after: 0)
        #expect(complete.map(\.bytes) == changeSets.map(\.wire))
        await reader.close()
        await server.terminate()
    }

    private func record(_ frame: Cloak_V1_Frame, into acked: inout [Int: UInt64]) {
        guard let result = frame.pushAckBody?.results.first, result.error == .unspecified else { return }
        acked[Int(frame.requestID) - 10_000] = result.cursor
    }

    /// Subscribes after `cursor` and returns everything up to `caught_up`.
    private func catchUp(_ client: WebSocketTestClient, after cursor: UInt64) async throws -> [(cursor: UInt64, bytes: [UInt8])] {
        try await client.send(Frames.subscribe(after: cursor, id: 77))
        var items: [(cursor: UInt64, bytes: [UInt8])] = []
        while true {
            let frame = try await client.reply()
            guard let deliver = frame.deliverBody, frame.requestID == 77 else { continue }
            items += deliver.items.map { ($0.cursor, Array($0.changeSet)) }
            if deliver.caughtUp { return items }
        }
    }
}
