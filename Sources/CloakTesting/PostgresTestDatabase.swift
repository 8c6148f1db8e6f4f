import Foundation
public import Logging
import PostgresNIO

/// Fresh PostgreSQL databases on the test cluster `scripts/postgres` starts (its URL in
/// `CLOAK_TEST_POSTGRES_URL`), one per test, dropped afterwards.
///
/// ```swift
/// let (url, drop) = try await PostgresTestDatabase.create(logger: logger)
/// defer { Task { await drop() } }
/// let store = try PostgresServerStore(url: url, logger: logger)
/// ```
public enum PostgresTestDatabase {
    /// What went wrong preparing a test database.
    public enum Failure: Error, Sendable {
        /// `CLOAK_TEST_POSTGRES_URL` is not set or is not a postgres:// URL.
        case notConfigured
    }

    /// `CLOAK_TEST_POSTGRES_URL`, if set (PostgreSQL tests are skipped without it).
    public static let adminURL = ProcessInfo.processInfo.environment["CLOAK_TEST_POSTGRES_URL"]

    /// Creates an empty database; returns its URL and a function that drops it.
    public static func create(logger: Logger) async throws -> (url: String, drop: @Sendable () async -> Void) {
        guard let url = adminURL, var components = URLComponents(string: url) else { throw Failure.notConfigured }
        let name = "cloak_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await admin(url, logger: logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        components.path = "/" + name
        return (components.string ?? url, {
            try? await admin(url, logger: logger) { client in
                try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"))
            }
        })
    }

    private static func admin(
        _ url: String, logger: Logger, _ body: @Sendable (PostgresClient) async throws -> Void
    ) async throws {
        guard let components = URLComponents(string: url), let host = components.host else { throw Failure.notConfigured }
        let configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
            password: components.password, database: components.path.split(separator: "/").first.map(String.init),
            tls: .disable)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client)
        }
    }
}
