import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import CloakTesting
import Foundation
import Testing

/// Two server processes on one store under random interleavings (seeded): devices on either
/// process push their chains one change set at a time and re-push after INTERNAL, group
/// commits run on either process at random moments, announcements of one process's commits
/// reach the other late and in any order, and fanout reads run whenever. Afterwards every
/// change set is stored once with contiguous cursors, and every device has received every
/// other device's change sets exactly once, in cursor order, with no GAP or FORK ever answered.
@Suite struct SharedStorePropertyTests {
    /// A device as a client would behave: one push in flight, the oldest unacknowledged first.
    private final class Device {
        let index: Int
        let client: CoreClient
        let chain: [ChangeSet]
        var acked: [UInt64: UInt64] = [:]  // seq → cursor
        var inFlight: UInt64?
        var nextRequest: UInt64 = 100
        var delivered: [UInt64] = []
        var deliveredBytes: [UInt64: [UInt8]] = [:]
        var otherErrors: [Cloak_V1_ErrorCode] = []

        init(index: Int, client: CoreClient, chain: [ChangeSet]) {
            self.index = index
            self.client = client
            self.chain = chain
        }

        var done: Bool { acked.count == chain.count }

        func pushNext() {
            guard inFlight == nil, let next = chain.first(where: { acked[$0.header.seq] == nil }) else { return }
            nextRequest += 1
            inFlight = nextRequest
            take(client.send(Frames.push([next], id: nextRequest)))
        }

        func take(_ frames: [Cloak_V1_Frame]) {
            for frame in frames {
                if let deliver = frame.deliverBody {
                    for item in deliver.items {
                        delivered.append(item.cursor)
                        deliveredBytes[item.cursor] = Array(item.changeSet)
                    }
                } else if let ack = frame.pushAckBody, frame.requestID == inFlight {
                    inFlight = nil
                    for (result, changeSet) in zip(ack.results, chain.filter({ acked[$0.header.seq] == nil }).prefix(1)) {
                        if result.error == .unspecified {
                            acked[changeSet.header.seq] = result.cursor
                        } else {
                            otherErrors.append(result.error)
                        }
                    }
                } else if let code = frame.errorCode, frame.requestID == inFlight {
                    inFlight = nil
                    if code != .`internal` { otherErrors.append(code) }
                }
            }
        }
    }

    @Test(arguments: 1...16 as ClosedRange<UInt64>)
    func randomInterleavingsConverge(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let store = InMemoryServerStore()
        let servers = (0..<2).map { makeServer({ $0.sharedStore = true }, store: store, seed: 10 * seed + UInt64($0)) }
        var account = TestAccount.make(seed: 1_000 + seed, devices: 4)
        _ = registerWithEveryDevice(account, on: servers[0])
        let chains = (0..<4).map { device in
            (0..<6).map { _ in account.next(by: device, in: conversation(UInt8(device % 2 + 1))) }
        }
        let devices = (0..<4).map { index in
            let client = CoreClient(servers[index % 2])
            client.login(account, device: index)
            _ = client.send(Frames.subscribe(after: 0, id: 5))
            return Device(index: index, client: client, chain: chains[index])
        }
        for server in servers { server.autoCommit = false }
        var announcements: [Int] = []  // process that has not yet heard of a commit of the other

        func step(_ action: Int) {
            switch action {
            case 0...3:
                devices[Int.random(in: 0..<4, using: &random)].pushNext()
            case 4, 5:
                let process = Int.random(in: 0..<2, using: &random)
                if servers[process].commit() { announcements.append(1 - process) }
            case 6:
                guard !announcements.isEmpty else { return }
                let heard = announcements.remove(at: Int.random(in: 0..<announcements.count, using: &random))
                servers[heard].remoteCommit(account.account)
            default:
                servers[Int.random(in: 0..<2, using: &random)].runFanoutReads()
            }
            for device in devices { device.take(device.client.receive()) }
        }

        for _ in 0..<300 { step(Int.random(in: 0..<8, using: &random)) }
        // Then everything settles: commits, announcements and fanout reads until quiet.
        var rounds = 0
        while rounds < 200, devices.contains(where: { !$0.done || $0.inFlight != nil }) || !announcements.isEmpty {
            rounds += 1
            for device in devices { device.pushNext() }
            for action in [4, 5, 6, 6, 7, 7] { step(action) }
        }
        for server in servers {
            server.remoteCommit(account.account)
            server.runFanoutReads()
        }
        for device in devices { device.take(device.client.receive()) }

        let total = UInt64(chains.joined().count)
        let query = ChangeSetQuery(account: account.account, afterCursor: 0, throughCursor: .max, limit: 1_000, maxBytes: 1 << 24)
        guard case .changeSets(let stored) = try store.performNow(.changeSets(query)) else {
            Issue.record("no change sets")
            return
        }
        #expect(stored.map(\.cursor) == Array(1...total))
        #expect(Set(stored.map(\.bytes)) == Set(chains.joined().map(\.wire)))
        let byCursor = Dictionary(uniqueKeysWithValues: stored.map { ($0.cursor, $0.bytes) })
        for device in devices {
            #expect(device.done, "device \(device.index) has unacknowledged change sets")
            #expect(device.otherErrors.isEmpty, "device \(device.index) got \(device.otherErrors)")
            #expect(device.delivered == device.delivered.sorted(), "device \(device.index): out of order")
            #expect(Set(device.delivered).count == device.delivered.count, "device \(device.index): sent twice")
            #expect(Set(device.delivered).union(device.acked.values).sorted() == Array(1...total))
            for (cursor, bytes) in device.deliveredBytes { #expect(byCursor[cursor] == bytes) }
        }
    }
}
