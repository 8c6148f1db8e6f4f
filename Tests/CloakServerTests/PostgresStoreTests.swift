import Foundation
import PostgresNIO
import Testing

@testable import CloakServer

@Suite(
    .enabled(
        if: TestStores.postgresURL != nil,
        "PostgreSQL store tests skipped: CLOAK_TEST_POSTGRES_URL is not set (scripts/postgres start prints one)"))
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
}
