import CloakCrypto
import CloakProtocol
import CloakSQLite
import Foundation
import GRDB
import Testing

@testable import CloakServer

/// What the SQLite store promises beyond the shared conformance suite: durable commits (ADV-19)
/// and WAL checkpoints that happen off the commit path.
@Suite struct SQLiteStoreTests {
    private static func withStore(
        checkpointInterval: Duration = .zero, _ body: (SQLiteServerStore, URL) async throws -> Void
    ) async throws {
        let (store, path, cleanup) = try await TestStores.sqliteFile(checkpointInterval: checkpointInterval)
        do { try await body(store, path) } catch {
            await cleanup()
            throw error
        }
        await cleanup()
    }

    /// GRDB's WAL setup lowers `synchronous` to NORMAL after the connection is prepared; the
    /// writer must run with FULL so a commit that returned survives power loss. Its page cache
    /// is larger than SQLite's default (many accounts' index pages stay in it between commits).
    @Test func theWriterFsyncsEveryCommitAndKeepsALargerCache() async throws {
        try await Self.withStore { store, _ in
            let (synchronous, autocheckpoint, cache) = try await store.pool.write { db in
                (
                    try Int.fetchOne(db, sql: "PRAGMA synchronous"), try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint"),
                    try Int.fetchOne(db, sql: "PRAGMA cache_size")
                )
            }
            #expect(synchronous == 2, "2 is FULL")
            #expect(autocheckpoint == WALCheckpointer.backstopBytes / SQLiteSchema.pageSize)
            #expect(cache == -SQLiteServerStore.writerCacheBytes / 1024, "negative: KiB, not pages")
        }
    }

    /// A new file gets 16 KiB pages (eleven change-set rows a page instead of two); a file made
    /// with SQLite's default 4 KiB keeps them, and its WAL backstop is counted in its own pages.
    @Test func newFilesUseLargePagesAndOldFilesKeepTheirs() async throws {
        try await Self.withStore { store, _ in
            let pageSize = try await store.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") }
            #expect(pageSize == SQLiteSchema.pageSize)
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("old.sqlite").path
        let old = try DatabaseQueue(path: path)
        try await old.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA page_size = 4096")
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE before_cloak (x INTEGER)")
        }
        try old.close()
        let store = try SQLiteServerStore(path: path)
        try await store.migrate()
        var batch = WriteBatch()
        batch.logEntries.append(.init(account: AccountID(unchecked: [UInt8](repeating: 7, count: 32)), index: 0, bytes: [1, 2, 3]))
        try await store.commit(batch)
        let (pageSize, autocheckpoint, entries) = try await store.pool.write { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA page_size"), try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint"),
                try Int.fetchOne(db, sql: "SELECT count(*) FROM device_log")
            )
        }
        await store.close()
        #expect(pageSize == 4096)
        #expect(autocheckpoint == WALCheckpointer.backstopBytes / 4096)
        #expect(entries == 1)
    }

    /// Pages reach the database file only through checkpoints; SQLite's own one is pushed back
    /// to 64 MiB, so a database file that grows past the few MiB committed here shows the
    /// background checkpointer copied them (paced at zero here: one may start after any commit).
    @Test func committedPagesAreCheckpointedInTheBackground() async throws {
        try await Self.withStore { store, path in
            let account = AccountID(unchecked: [UInt8](repeating: 7, count: 32))
            var setup = WriteBatch()
            setup.logEntries = [.init(account: account, index: 0, bytes: [1, 2, 3])]
            try await store.commit(setup)
            let before = try Self.fileSize(path)
            let chain = Self.chain
            for batch in Self.burst(account: account, chain: chain) { try await store.commit(batch) }
            // A checkpoint copies what was committed before it began; small commits keep
            // starting new ones until the last big batch is in the file too.
            var nudge = WriteBatch()
            nudge.cursorAcks = [.init(account: account, device: chain.author, cursor: 1)]
            var grown = false
            for _ in 0..<200 where !grown {
                grown = try Self.fileSize(path) > before + (5 << 20)
                if !grown {
                    try await Task.sleep(for: .milliseconds(25))
                    try await store.commit(nudge)
                }
            }
            #expect(grown, "the database file did not grow: nothing was checkpointed")
            // Everything is still readable, from the database file or the WAL.
            let stored = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM change_sets") }
            #expect(stored == 6_000)
        }
    }

    /// Commits that come faster than the checkpoint pace are not left in the WAL once they stop:
    /// the checkpoint they were skipped for schedules one more.
    @Test func aBurstFasterThanThePaceIsCheckpointedAfterwards() async throws {
        try await Self.withStore(checkpointInterval: .milliseconds(200)) { store, path in
            let account = AccountID(unchecked: [UInt8](repeating: 8, count: 32))
            let chain = Self.chain
            var setup = WriteBatch()
            setup.logEntries = [.init(account: account, index: 0, bytes: [1, 2, 3])]
            try await store.commit(setup)
            let before = try Self.fileSize(path)
            for batch in Self.burst(account: account, chain: chain) { try await store.commit(batch) }
            // No commit from here on: only the scheduled follow-up can copy the burst.
            var grown = false
            for _ in 0..<200 where !grown {
                grown = try Self.fileSize(path) > before + (5 << 20)
                if !grown { try await Task.sleep(for: .milliseconds(25)) }
            }
            #expect(grown, "the burst stayed in the WAL")
        }
    }

    /// An identifier of the wrong length in the file (a damaged or hand-edited database) is a
    /// store error for that read, not a crash of the process that serves every account.
    @Test func aDamagedStoredIdIsAnErrorNotACrash() async throws {
        try await Self.withStore { store, _ in
            let account = AccountID(unchecked: [UInt8](repeating: 9, count: 32))
            var batch = WriteBatch()
            batch.logEntries = [.init(account: account, index: 0, bytes: [1, 2, 3])]
            batch.changeSets = [
                WriteBatch.ChangeSetRow(
                    account: account, cursor: 1, chain: Self.chain, seq: 1, hash: Digest32(hashing: [1]), bytes: [7])
            ]
            try await store.commit(batch)
            #expect(try await store.account(account)?.chains[Self.chain]?.seq == 1)
            try await store.pool.write { db in try db.execute(sql: "UPDATE chains SET conversation = x'0102'") }
            let error = await #expect(throws: StoreError.self) { try await store.account(account) }
            guard case .operationFailed(let message) = error else { throw error ?? StoreError.corrupt("no error") }
            #expect(message.contains("stored ConversationID must be 16 bytes, got 2"))
            // Other accounts keep being served.
            #expect(try await store.account(AccountID(unchecked: [UInt8](repeating: 8, count: 32))) == nil)
        }
    }

    private static let chain = ChainKey(
        conversation: ConversationID(unchecked: [UInt8](repeating: 1, count: 16)),
        author: DeviceID(unchecked: [UInt8](repeating: 2, count: 16)))

    /// Six batches of 1,000 one-KiB change sets on one chain: about 6 MiB of pages.
    private static func burst(account: AccountID, chain: ChainKey) -> [WriteBatch] {
        (0..<6).map { batchIndex in
            var batch = WriteBatch()
            for offset in 1...1_000 {
                let cursor = UInt64(batchIndex * 1_000 + offset)
                batch.changeSets.append(
                    WriteBatch.ChangeSetRow(
                        account: account, cursor: cursor, chain: chain, seq: cursor,
                        hash: Digest32(hashing: cursor.littleEndianBytes), bytes: [UInt8](repeating: 0x5A, count: 1_024)))
            }
            return batch
        }
    }

    private static func fileSize(_ url: URL) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
    }

    /// The in-place binding used by the hot inserts: blobs (empty ones included) and integers
    /// land as bound, a conflict that does nothing reports zero changes, and the statement is
    /// reusable afterwards.
    @Test func inPlaceBindingStoresWhatWasBound() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (k BLOB PRIMARY KEY, n INTEGER NOT NULL, v BLOB)")
            let insert = try db.cachedStatement(sql: "INSERT INTO t (k, n, v) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            #expect(try insert.executeInPlace([.blob([1, 2]), .integer(-5), .blob([])]) == 1)
            #expect(try insert.executeInPlace([.blob([1, 2]), .integer(9), .blob([9])]) == 0)
            #expect(try insert.executeInPlace([.blob([3]), .integer(Int64.max), .blob([UInt8](repeating: 0xAB, count: 5_000))]) == 1)
            // Inline blobs: 32 bytes, 16 bytes and an empty one bind exactly what they hold.
            let id32 = Array(UInt8(1)...32), id16 = Array(UInt8(101)...116)
            for (key, value) in [(id32, id16), (id16, [UInt8]()), ([UInt8](), id32)] {
                #expect(
                    try insert.executeInPlace([
                        .small(key.withUnsafeBytes(SmallBlob.init)), .integer(7),
                        .small(value.withUnsafeBytes(SmallBlob.init)),
                    ]) == 1)
                let row = try Row.fetchOne(
                    db, sql: "SELECT v, typeof(v) AS type FROM t WHERE k = ?", arguments: [Data(key)])
                #expect((row?["v"] as Data?) == Data(value))
                #expect((row?["type"] as String?) == "blob")
            }
            try db.execute(sql: "DELETE FROM t WHERE n = 7")
            let rows = try Row.fetchAll(db, sql: "SELECT k, n, v, typeof(v) AS type FROM t ORDER BY k")
            #expect(rows.map { $0["k"] as Data } == [Data([1, 2]), Data([3])])
            #expect(rows.map { $0["n"] as Int64 } == [-5, Int64.max])
            #expect(rows.map { $0["type"] as String } == ["blob", "blob"])
            #expect((rows[1]["v"] as Data) == Data(repeating: 0xAB, count: 5_000))
            let failing = try db.cachedStatement(sql: "INSERT INTO t (k, n, v) VALUES (?, ?, ?)")
            let error = #expect(throws: DatabaseError.self) { try failing.executeInPlace([.blob([3]), .integer(1), .blob([])]) }
            #expect(error?.resultCode == .SQLITE_CONSTRAINT)
            // The statement is reusable after the failure.
            #expect(try failing.executeInPlace([.blob([4]), .integer(2), .blob([7])]) == 1)
        }
        // Outside a transaction it refuses rather than autocommitting a step of a larger write.
        try queue.writeWithoutTransaction { db in
            let insert = try db.makeStatement(sql: "INSERT INTO t (k, n, v) VALUES (?, ?, ?)")
            let error = #expect(throws: DatabaseError.self) { try insert.executeInPlace([.blob([5]), .integer(3), .blob([])]) }
            #expect(error?.resultCode == .SQLITE_MISUSE)
        }
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == 3)
    }
}
