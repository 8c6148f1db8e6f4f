import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import CloakServer

@Suite(.requiresPostgres)
struct PostgresStoreTests {
    /// Catch-up pages must walk the primary key in cursor order even before autovacuum has
    /// analyzed a table that grew from empty (a bitmap scan sorted every match: 100× slower).
    @Test func storeConnectionsRunWithoutBitmapScans() async throws {
        let (store, cleanup) = try await TestStores.postgres()
        do {
            let postgres = try #require(store as? PostgresServerStore)
            var settings: [String] = []
            for try await (value) in try await postgres.client.query("SHOW enable_bitmapscan").decode(String.self) {
                settings.append(value)
            }
            #expect(settings == ["off"])
        } catch {
            await cleanup()
            throw error
        }
        await cleanup()
    }

    /// `cloak-server` migrates right after opening the store: that first lease must not come
    /// before the pool runs (postgres-nio then logs a warning at every start).
    @Test func openingAndMigratingLogsNoWarnings() async throws {
        let (url, drop) = try await PostgresTestDatabase.create(logger: quietLogger)
        let warnings = WarningLog()
        let logger = Logger(label: "cloak.server.test", factory: { _ in warnings })
        for _ in 0..<5 {
            let store = try PostgresServerStore(url: url, maximumConnections: 2, logger: logger)
            do {
                try await store.migrate()
                try await store.ping()
            } catch {
                await store.close()
                await drop()
                throw error
            }
            await store.close()
        }
        await drop()
        #expect(warnings.messages == [])
    }
}

/// Collects what is logged at warning or above.
private struct WarningLog: LogHandler {
    private let box = Box()
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    private final class Box: Sendable {
        let messages = Mutex<[String]>([])
    }

    var messages: [String] { box.messages.withLock { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.level >= .warning else { return }
        box.messages.withLock { $0.append(event.message.description) }
    }
}

/// Several server processes on one PostgreSQL database (docs/design.md "Stores"): two sync cores,
/// each with its own connection pool and LISTEN connection, push into one account at once.
@Suite(.requiresPostgres)
struct PostgresSharedStoreTests {
    @Test func twoServerProcessesShareOneDatabase() async throws {
        let (stores, cleanup) = try await TestStores.postgresStores(2)
        var configuration = ServerConfiguration()
        configuration.sharedStore = true
        let first = AsyncDriver(store: stores[0], configuration: configuration)
        let second = AsyncDriver(store: stores[1], configuration: configuration)
        do {
            try await Self.pushFromBothProcesses(first, second, stores[0])
        } catch {
            await first.stop()
            await second.stop()
            await cleanup()
            throw error
        }
        await first.stop()
        await second.stop()
        await cleanup()
    }

    /// Both devices subscribe and push at once, each through its own process, so nearly every
    /// commit of one process finds the account moved by the other: retried pushes, fanout
    /// reads and notifications must still give each device every change set exactly once.
    private static func pushFromBothProcesses(_ first: AsyncDriver, _ second: AsyncDriver, _ store: any ServerStore)
        async throws
    {
        var account = TestAccount.make(seed: 95, devices: 2)
        var owner = first.connect(seed: 1)
        #expect(await owner.login(account, register: true))
        await owner.send(Frames.appendDeviceLog(account.log.entries[1], id: 3))
        _ = await owner.reply(to: 3)
        let perSide = 20
        let pushes = [
            (0..<perSide).map { _ in account.next(by: 0, in: conversation(1)) },
            (0..<perSide).map { _ in account.next(by: 1, in: conversation(2)) },
        ]
        let snapshot = account
        let sides = await withTaskGroup(of: (Int, Side).self) { group in
            for (index, driver) in [first, second].enumerated() {
                group.addTask {
                    var connection = driver.connect(seed: 10 + UInt64(index))
                    guard await connection.login(snapshot, device: index) else { return (index, Side()) }
                    await connection.send(Frames.subscribe(after: 0, id: 4))
                    var side = Side()
                    side.frames = [await connection.reply(to: 4)].compactMap { $0 }
                    for (n, changeSet) in pushes[index].enumerated() {
                        if let cursor = await connection.pushUntilAcked(changeSet, id: 100 + UInt64(n) * 100, seen: &side.frames) {
                            side.acked.append(cursor)
                        }
                    }
                    let seen = side.frames
                    side.frames += await connection.collect { delivered(seen + $0).count >= perSide }
                    return (index, side)
                }
            }
            var sides = [Side(), Side()]
            for await (index, side) in group { sides[index] = side }
            return sides
        }
        let total = UInt64(2 * perSide)
        for (index, side) in sides.enumerated() {
            let cursors = delivered(side.frames)
            #expect(side.acked.count == perSide)
            #expect(cursors == cursors.sorted() && Set(cursors).count == cursors.count)  // in order, once each
            #expect(Set(cursors + side.acked).sorted() == Array(1...total))
            let bytes = side.frames.compactMap(\.deliverBody).flatMap(\.items).map { Digest32(hashing: Array($0.changeSet)) }
            #expect(bytes == pushes[1 - index].map { Digest32(hashing: $0.wire) })  // the other's bytes, unchanged, in order
        }
        let stored = try await store.changeSets(
            ChangeSetQuery(account: account.account, afterCursor: 0, throughCursor: .max, limit: 100, maxBytes: 1 << 24))
        #expect(stored.map(\.cursor) == Array(1...total))
    }

    /// What one device pushed (its cursors) and received.
    private struct Side: Sendable {
        var acked: [UInt64] = []
        var frames: [Cloak_V1_Frame] = []
    }
}

/// The cursors of every Deliver item in `frames`.
private func delivered(_ frames: [Cloak_V1_Frame]) -> [UInt64] {
    frames.compactMap(\.deliverBody).flatMap { $0.items.map(\.cursor) }
}

extension AsyncConnection {
    /// Pushes one change set, again after each INTERNAL (a conflict with another process),
    /// up to 200 times; returns its cursor. Other frames received meanwhile go to `seen`.
    mutating func pushUntilAcked(_ changeSet: ChangeSet, id: UInt64, seen: inout [Cloak_V1_Frame]) async -> UInt64? {
        for attempt in 0..<200 {
            let request = id * 1_000 + UInt64(attempt)
            await send(Frames.push([changeSet], id: request))
            while let frame = await next() {
                guard frame.requestID == request else {
                    seen.append(frame)
                    continue
                }
                if let result = frame.pushAckBody?.results.first, result.error == .unspecified { return result.cursor }
                break
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// Pings until `done` holds for the frames received (at most about 15 s); returns them.
    mutating func collect(until done: ([Cloak_V1_Frame]) -> Bool) async -> [Cloak_V1_Frame] {
        var frames: [Cloak_V1_Frame] = []
        for attempt in 0..<600 {
            let request = 900_000_000 + UInt64(attempt)
            await send(Frames.ping(UInt64(attempt), id: request))
            while let frame = await next(), frame.requestID != request { frames.append(frame) }
            if done(frames) { return frames }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return frames
    }
}
