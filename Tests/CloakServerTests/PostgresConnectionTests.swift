import CloakTesting
import Foundation
import Testing

@testable import CloakServer

/// How the server reaches PostgreSQL: a password from a file instead of the URL, and TLS that
/// is really required when the URL says so.
@Suite(.requiresPostgres)
struct PostgresConnectionTests {
    /// The test cluster's URL without its password, and the password.
    private func split() throws -> (url: String, password: String) {
        let admin = try #require(TestStores.postgresURL)
        var components = try #require(URLComponents(string: admin))
        let password = try #require(components.password)
        components.password = nil
        return (try #require(components.string), password)
    }

    @Test func aPasswordFromAFileReplacesTheURLs() async throws {
        let (url, password) = try split()
        let good = try PostgresServerStore(url: url, password: password, maximumConnections: 1, logger: quietLogger)
        try await good.ping(within: .seconds(10))
        await good.close()
        let wrong = try PostgresServerStore(url: url, password: password + "x", maximumConnections: 1, logger: quietLogger)
        await #expect(throws: StoreError.self) { try await wrong.ping(within: .seconds(10)) }
        await wrong.close()
    }

    @Test func sslmodeRequireNeverFallsBackToPlainText() async throws {
        // The test cluster does not offer TLS: a connection that requires it must fail.
        let (url, password) = try split()
        let store = try PostgresServerStore(url: url + "?sslmode=require", password: password, maximumConnections: 1, logger: quietLogger)
        await #expect(throws: StoreError.self) { try await store.ping(within: .seconds(10)) }
        await store.close()
        let plain = try PostgresServerStore(url: url + "?sslmode=disable", password: password, maximumConnections: 1, logger: quietLogger)
        try await plain.ping(within: .seconds(10))
        await plain.close()
    }

    @Test func unknownModesAndMissingRootCertificatesAreSentences() {
        #expect(throws: StoreError.invalidLocation(
            "The database URL's sslmode=prefer is not supported; use disable, require, verify-ca or verify-full.")) {
            _ = try PostgresServerStore.configuration("postgres://u@h/db?sslmode=prefer")
        }
        #expect(throws: StoreError.invalidLocation(
            "The database URL's sslrootcert /nonexistent/ca.pem does not exist or is not readable; check the path.")) {
            _ = try PostgresServerStore.configuration("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        }
        #expect(throws: Never.self) { _ = try PostgresServerStore.configuration("postgres://u@h/db?sslmode=verify-full") }
    }
}
