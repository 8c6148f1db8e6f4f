import Foundation
import CloakTesting
import Logging
import Testing

@testable import CloakServer

/// The stores the conformance suite runs against.
enum TestStores {
    /// `CLOAK_TEST_POSTGRES_URL` (scripts/test and .ci/run start a throwaway cluster and set it).
    static let postgresURL = PostgresTestDatabase.adminURL

    /// A fresh SQLite database in a temporary directory.
    static func sqlite() async throws -> (store: any ServerStore, cleanup: @Sendable () async -> Void) {
        let (store, _, cleanup) = try await sqliteFile(checkpointInterval: .milliseconds(100))
        return (store, cleanup)
    }

    /// A fresh SQLite database in a temporary directory, with its file path and WAL checkpoint
    /// pace (the store's own tests look at the file).
    static func sqliteFile(checkpointInterval: Duration) async throws
        -> (store: SQLiteServerStore, path: URL, cleanup: @Sendable () async -> Void)
    {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-test-\(UUID().uuidString)")
        let path = directory.appendingPathComponent("cloak.sqlite")
        let store = try SQLiteServerStore(path: path.path, checkpointInterval: checkpointInterval)
        try await store.migrate()
        return (store, path, {
            await store.close()
            try? FileManager.default.removeItem(at: directory)
        })
    }

    /// A fresh PostgreSQL database on the test cluster (created, then dropped).
    static func postgres() async throws -> (store: any ServerStore, cleanup: @Sendable () async -> Void) {
        let (stores, cleanup) = try await postgresStores(1)
        return (stores[0], cleanup)
    }

    /// `count` stores (each with its own connection pool, as separate server processes would
    /// have) on one fresh PostgreSQL database.
    static func postgresStores(_ count: Int) async throws
        -> (stores: [PostgresServerStore], cleanup: @Sendable () async -> Void)
    {
        guard postgresURL != nil else { throw StoreError.unavailable("CLOAK_TEST_POSTGRES_URL is not set") }
        let (url, drop) = try await PostgresTestDatabase.create(logger: quietLogger)
        let stores = try (0..<count).map { _ in
            try PostgresServerStore(url: url, maximumConnections: 8, logger: quietLogger)
        }
        for store in stores { try await store.migrate() }
        return (stores, {
            for store in stores { await store.close() }
            await drop()
        })
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs a suite only when `CLOAK_TEST_POSTGRES_URL` names a test cluster; otherwise it is
    /// reported as skipped with the reason, never passed silently.
    static var requiresPostgres: Self {
        .enabled(
            if: TestStores.postgresURL != nil,
            "PostgreSQL store tests skipped: CLOAK_TEST_POSTGRES_URL is not set (scripts/postgres start prints one)")
    }
}
