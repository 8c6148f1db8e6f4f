import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// What the local store deletes is gone from its files, not only from its tables (PROTOCOL.md
/// §23): a thief of a removed device's files finds no copy of a wiped key (ADV-08). Without
/// ``SQLiteClientStore/purgeDeleted()`` the database file keeps the row's older page; Debian's
/// SQLite zeroes deleted cells by default, so here only the purge is what this can catch; the
/// store asks for `secure_delete` itself for SQLite builds that do not.
@Suite struct StoreWipeTests {
    @Test("ADV-08 a deleted row's bytes are in neither the database file nor its write-ahead log after a purge")
    func deletedRowsAreOverwritten() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-wipe-\(UInt64.random(in: 0..<UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cloak.sqlite").path
        let store = try SQLiteClientStore(path: path)
        let secret = [UInt8](repeating: 0xA5, count: 48) + Array("cloak-canary-wiped-key".utf8)
        // Neighbours keep the page in use, so the deleted row's cell stays inside a live page.
        try store.write { tx in
            try tx.setMeta(.cursor, [1, 2, 3])
            try tx.setMeta(.pendingEpochKey, secret)
            try tx.setMeta(.recoveryNoticeAt, [4, 5, 6])
        }
        try store.purgeDeleted()
        #expect(Self.occurs(secret, in: directory), "the scan must find the row while it exists")
        try store.write { tx in try tx.deleteMeta(.pendingEpochKey) }
        try store.purgeDeleted()
        #expect(!Self.occurs(secret, in: directory), "a deleted row's bytes remain in a file")
        #expect(try store.read { tx in try tx.meta(.cursor) } == [1, 2, 3])
    }

    @Test("every connection to the store waits for another one's lock (busy_timeout) instead of failing at once")
    func secondConnectionWaitsForTheLock() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-busy-\(UInt64.random(in: 0..<UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cloak.sqlite").path
        let first = try SQLiteClientStore(path: path)
        let second = try SQLiteClientStore(path: path)
        for store in [first, second] {
            #expect(try store.busyTimeoutMillis == Int(SQLiteClientStore.busyTimeoutSeconds * 1_000))
        }
    }

    static func occurs(_ needle: [UInt8], in directory: URL) -> Bool {
        let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)?.allObjects as? [URL] ?? []
        return files.contains { FileManager.default.contents(atPath: $0.path)?.range(of: Data(needle)) != nil }
    }
}
