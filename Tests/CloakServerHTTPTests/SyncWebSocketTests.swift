import CloakCrypto
import CloakProtocol
import CloakServer
@testable import CloakServerHTTP
import Foundation
import NIOCore
import NIOWebSocket
import Testing

/// The `/v1/sync` WebSocket end to end on loopback: real sockets, real SQLite.
@Suite(.timeLimit(.minutes(2))) struct SyncWebSocketTests {
    @Test func aPushIsAckedAndFannedOutByteIdentically() async throws {
        try await withServer { server in
            var account = TestAccount.make(seed: 500, devices: 2)
            let a = try await WebSocketTestClient.owner(of: account, port: server.port)
            let b = try await WebSocketTestClient.subscriber(of: account, port: server.port)
            let changeSet = account.next(in: conversation(1))
            try await a.send(Frames.push([changeSet], id: 5))
            let ack = try await a.reply()
            #expect(ack.requestID == 5)
            #expect(ack.pushAckBody?.results.first?.cursor == 1)
            let delivered = try await b.reply()
            #expect(delivered.requestID == 0)
            #expect(delivered.deliverBody.map { Array($0.items[0].changeSet) } == changeSet.wire)
            #expect(delivered.deliverBody?.items.first?.cursor == 1)
            await a.close()
            await b.close()
        }
    }

    /// A fanout hands one frame to many queues at once, grouped by event loop: with more
    /// receivers than loops, every receiver still gets every change set it subscribed to, byte
    /// for byte and in cursor order, and one that filters by conversation only its own.
    @Test func aFanoutReachesEveryReceiverInOrderAndAFilterStillApplies() async throws {
        try await withServer { server in
            var account = TestAccount.make(seed: 510, devices: 2)
            let pusher = try await WebSocketTestClient.owner(of: account, port: server.port)
            var receivers: [WebSocketTestClient] = []
            for _ in 0..<6 { receivers.append(try await WebSocketTestClient.subscriber(of: account, port: server.port)) }
            let filtered = try await WebSocketTestClient.subscriber(
                of: account, port: server.port, conversations: [conversation(2)])
            let changeSets = [
                account.next(in: conversation(1)), account.next(in: conversation(2)), account.next(in: conversation(1)),
            ]
            for (n, changeSet) in changeSets.enumerated() {
                try await pusher.send(Frames.push([changeSet], id: 10 + UInt64(n)))
                #expect(try await pusher.reply().pushAckBody?.results.first?.cursor == UInt64(n + 1))
            }
            for (n, receiver) in receivers.enumerated() {
                var got: [(cursor: UInt64, bytes: [UInt8])] = []
                while got.count < changeSets.count {
                    let frame = try await receiver.reply()
                    #expect(frame.requestID == 0)
                    got += (frame.deliverBody?.items ?? []).map { ($0.cursor, Array($0.changeSet)) }
                }
                #expect(got.map(\.cursor) == [1, 2, 3], "receiver \(n)")
                #expect(got.map(\.bytes) == changeSets.map(\.wire), "receiver \(n)")
            }
            let only = try await filtered.reply()
            #expect(only.deliverBody?.items.map(\.cursor) == [2])
            #expect(only.deliverBody.map { Array($0.items[0].changeSet) } == changeSets[1].wire)
            await pusher.close()
            for receiver in receivers { await receiver.close() }
            await filtered.close()
        }
    }

    @Test func authenticationRefusalsCarryTheirCodesAndClose() async throws {
        try await withServer { server in
            var account = TestAccount.make(seed: 501, devices: 2)
            let owner = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await owner.login(account, register: true))
            try await owner.send(Frames.appendDeviceLog(account.log.entries[1], id: 3))
            _ = try await owner.reply()
            try await owner.send(Frames.appendDeviceLog(account.removeDevice(1), id: 4))
            _ = try await owner.reply()
            let stranger = TestDevice(seed: 5_010)
            let other = TestAccount.make(seed: 502)
            let cases: [(String, (WebSocketTestClient) -> [UInt8], Cloak_V1_ErrorCode)] = [
                ("wrong signature", { Frames.authenticate(account: account.account, deviceID: account.devices[0].id, key: stranger.signing, nonce: $0.nonce) }, .authFailed),
                ("replayed nonce", { _ in Frames.authenticate(account: account.account, device: account.devices[0], nonce: owner.nonce) }, .authFailed),
                ("revoked device", { Frames.authenticate(account: account.account, device: account.devices[1], nonce: $0.nonce) }, .deviceNotActive),
                ("unknown account", { Frames.authenticate(account: other.account, device: other.devices[0], nonce: $0.nonce) }, .unknownAccount),
            ]
            for (name, frame, code) in cases {
                let client = try await WebSocketTestClient.connect(port: server.port)
                try await client.send(frame(client))
                let (frames, close) = try await client.untilClosed()
                #expect(frames.first?.errorCode == code, "\(name)")
                #expect(close == 1008, "\(name)")
            }
            try await owner.send(Frames.ping(1, id: 9))
            #expect(try await owner.reply().requestID == 9)
        }
    }

    /// Every malformed-frame class of PROTOCOL.md §"Errors" gets its code, and a healthy
    /// connection is served throughout (ADV-16, ADV-17).
    @Test func malformedFramesGetTheirCodesAndTheServerKeepsServing() async throws {
        try await withServer({ $0.sync.limits.maxFrameBytes = 64 << 10 }) { server in
            var account = TestAccount.make(seed: 503)
            let healthy = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await healthy.login(account, register: true))
            var unknownField = [UInt8]([0x08, 0x07])  // request_id 7
            unknownField += [0xA8, 0x06, 0x01]  // field 101 (varint): not a known body
            let cases: [(String, (WebSocketTestClient) async throws -> Void, Cloak_V1_ErrorCode, UInt16)] = [
                ("garbage", { try await $0.send([0xFF, 0xFF, 0xFF, 0xFF]) }, .malformedFrame, 1008),
                ("truncated", { try await $0.send(Array(Frames.ping(1, id: 1).dropLast())) }, .malformedFrame, 1008),
                ("no body", { try await $0.send(FrameCodec.encode(Cloak_V1_Frame())) }, .malformedFrame, 1008),
                ("unknown body", { try await $0.send(unknownField) }, .malformedFrame, 1008),
                ("text message", { try await $0.sendText("hello") }, .malformedFrame, 1008),
                ("oversize", { try await $0.send([UInt8](repeating: 0, count: (64 << 10) + 1)) }, .frameTooLarge, 1009),
                ("oversize in fragments", { client in
                    let half = ByteBuffer(bytes: [UInt8](repeating: 0, count: 40 << 10))
                    try await client.write(WebSocketFrame(fin: false, opcode: .binary, data: half))
                    try await client.write(WebSocketFrame(fin: true, opcode: .continuation, data: half))
                }, .frameTooLarge, 1009),
                ("before authentication", { try await $0.send(Frames.subscribe(after: 0, id: 3)) }, .notAuthenticated, 1008),
                ("server frame", { client in
                    #expect(try await client.login(account))
                    try await client.send(FrameCodec.encode(.pong(Cloak_V1_Pong()), requestID: 4))
                    #expect(try await client.reply().errorCode == .unexpectedFrame)
                    try await client.send([0x01])
                }, .malformedFrame, 1008),
            ]
            for (name, act, code, closeCode) in cases {
                let client = try await WebSocketTestClient.connect(port: server.port)
                try await act(client)
                let (frames, close) = try await client.untilClosed()
                #expect(frames.last?.errorCode == code, "\(name)")
                #expect(close == closeCode, "\(name)")
                try await healthy.send(Frames.push([account.next(in: conversation(1))], id: 100))
                #expect(try await healthy.reply().pushAckBody?.results.first?.error == .unspecified, "after \(name)")
            }
        }
    }

    /// A reader that pauses long enough for its socket to stop taking writes (a 4 KiB receive
    /// buffer, 6 MiB pushed) but not past its queue's bound resumes where it stopped: the queue
    /// waits for the socket's writability event and then delivers everything, in cursor order,
    /// without an error.
    @Test func aPausedReaderResumesAndGetsEverythingInOrder() async throws {
        try await withServer({
            $0.sync.maxOutboundQueueBytes = 32 << 20
            $0.sync.limits.maxPushesPerSecond = 10_000
        }) { server in
            var account = TestAccount.make(seed: 506, devices: 2)
            let pusher = try await WebSocketTestClient.owner(of: account, port: server.port)
            let paused = try await WebSocketTestClient.subscriber(of: account, port: server.port, receiveBuffer: 4_096)
            try await paused.setReading(false)
            let pushes = 48
            for n in 0..<pushes {
                let batch = (0..<8).map { _ in account.next(in: conversation(1), bodyBytes: 16 << 10) }
                try await pusher.send(Frames.push(batch, id: 10 + UInt64(n)))
                #expect(try await pusher.reply().pushAckBody?.results.count == 8)
            }
            try await paused.setReading(true)
            var cursors: [UInt64] = []
            while cursors.count < pushes * 8 {
                let frame = try await paused.reply()
                #expect(frame.errorCode == nil)
                cursors += frame.deliverBody?.items.map(\.cursor) ?? []
            }
            #expect(cursors == Array(1...UInt64(pushes * 8)))
            #expect(server.registry.connectionCount == 2)
        }
    }

    @Test func aSlowConsumerIsDisconnectedAtItsBound() async throws {
        try await withServer({
            $0.sync.maxOutboundQueueBytes = 256 << 10
            $0.sync.limits.maxPushesPerSecond = 10_000
        }) { server in
            var account = TestAccount.make(seed: 504, devices: 2)
            let pusher = try await WebSocketTestClient.owner(of: account, port: server.port)
            let slow = try await WebSocketTestClient.subscriber(of: account, port: server.port, receiveBuffer: 4_096)
            try await slow.setReading(false)
            #expect(server.registry.connectionCount == 2)
            // Push until the server reports the overflow (socket buffers fill first, then the
            // 256 KiB queue), then read again: what was in flight, SLOW_CONSUMER, close 1013.
            let (_, overflowed) = try await pushUntilSlowConsumer(&account, from: pusher, port: server.port)
            #expect(overflowed, "the slow consumer was never cut off")
            try await slow.setReading(true)
            let (frames, close) = try await slow.untilClosed(timeout: .seconds(20))
            #expect(frames.last?.errorCode == .slowConsumer)
            #expect(close == 1013)
            try await pusher.send(Frames.ping(5, id: 999))
            #expect(try await pusher.reply().requestID == 999)
        }
    }
}

extension SyncWebSocketTests {
    /// A catch-up of many pages over the socket ends with exactly one caught-up page.
    @Test func catchUpOfManyPagesOverTheSocket() async throws {
        try await withServer({
            $0.sync.limits.maxCatchUpBatch = 100
            $0.sync.limits.maxPushesPerSecond = 10_000
        }) { server in
            var account = TestAccount.make(seed: 505)
            let writer = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await writer.login(account, register: true))
            for n in 0..<10 {
                let batch = (0..<100).map { _ in account.next(in: conversation(1), bodyBytes: 1_000) }
                try await writer.send(Frames.push(batch, id: 10 + UInt64(n)))
                _ = try await writer.reply()
            }
            let reader = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await reader.login(account))
            try await reader.send(Frames.subscribe(after: 0, id: 7))
            var cursors: [UInt64] = []
            var pages: [Bool] = []
            while pages.last != true {
                let deliver = try #require(try await reader.reply().deliverBody)
                cursors += deliver.items.map(\.cursor)
                pages.append(deliver.caughtUp)
            }
            #expect(cursors == Array(1...1_000))
            #expect(pages.count == 10)
        }
    }
}

extension SyncWebSocketTests {
    /// ADV-33 on a fanout large enough to be handed to each event loop as one item (more than
    /// `ConnectionTable.directFanout` subscribers): the subscriber that stopped reading is cut
    /// off at its bound with SLOW_CONSUMER and 1013, while every subscriber that kept reading
    /// gets every change set, in cursor order, and stays connected.
    @Test func aLargeFanoutCutsOffOnlyTheSubscriberThatStoppedReading() async throws {
        try await withServer({
            $0.sync.maxOutboundQueueBytes = 512 << 10
            $0.sync.limits.maxPushesPerSecond = 10_000
        }) { server in
            var account = TestAccount.make(seed: 507, devices: 2)
            let pusher = try await WebSocketTestClient.owner(of: account, port: server.port)
            var readers: [WebSocketTestClient] = []
            for _ in 0..<5 { readers.append(try await WebSocketTestClient.subscriber(of: account, port: server.port)) }
            let slow = try await WebSocketTestClient.subscriber(of: account, port: server.port, receiveBuffer: 4_096)
            try await slow.setReading(false)
            #expect(readers.count + 1 > ConnectionTable.directFanout)
            let (pushed, overflowed) = try await pushUntilSlowConsumer(&account, from: pusher, port: server.port)
            #expect(overflowed, "the slow subscriber was never cut off")
            for (n, reader) in readers.enumerated() {
                var cursors: [UInt64] = []
                while cursors.count < pushed {
                    let frame = try await reader.reply()
                    #expect(frame.errorCode == nil, "reader \(n)")
                    cursors += frame.deliverBody?.items.map(\.cursor) ?? []
                }
                #expect(cursors == Array(1...UInt64(pushed)), "reader \(n)")
            }
            try await slow.setReading(true)
            let (frames, close) = try await slow.untilClosed(timeout: .seconds(20))
            #expect(frames.last?.errorCode == .slowConsumer)
            #expect(close == 1013)
            try await readers[0].send(Frames.ping(5, id: 999))
            #expect(try await readers[0].reply().requestID == 999)
        }
    }
}

extension SyncWebSocketTests {
    /// Pushes batches of eight 16 KiB change sets, each acked, until the server's metrics
    /// report a SLOW_CONSUMER cut-off (or 400 pushes): how many change sets were pushed, and
    /// whether the cut-off came.
    func pushUntilSlowConsumer(
        _ account: inout TestAccount, from pusher: WebSocketTestClient, port: Int
    ) async throws -> (changeSets: Int, overflowed: Bool) {
        var pushes = 0
        var overflowed = false
        while !overflowed, pushes < 400 {
            let batch = (0..<8).map { _ in account.next(in: conversation(1), bodyBytes: 16 << 10) }
            try await pusher.send(Frames.push(batch, id: 10 + UInt64(pushes)))
            _ = try await pusher.reply()
            pushes += 1
            // The series exists from the start at 0: the cut-off is a count above it.
            overflowed = try await httpGet(port: port, path: "/metrics").body.split(separator: "\n")
                .contains { $0.hasPrefix("cloak_errors_total{code=\"slow_consumer\"} ") && !$0.hasSuffix(" 0") }
        }
        return (pushes * 8, overflowed)
    }
}
