import CloakTesting
import Foundation
import Logging
import Testing

/// ADV-44 on PostgreSQL as an operator does it: `pg_dump` of the real server's database, more
/// writes, then the database dropped and restored from the dump (`pg_restore`) under the
/// stopped server. The devices must notice, heal the server and converge with nothing lost.
@Suite(
    "End to end: a PostgreSQL server restored from an older dump",
    .serialized,
    .enabled(
        if: PostgresTestDatabase.adminURL != nil,
        "PostgreSQL restore test skipped: CLOAK_TEST_POSTGRES_URL is not set (scripts/postgres start prints one)"))
struct RestoredPostgresEndToEndTests {
    @Test("ADV-44 a database restored with pg_restore: every device reports serverRollback, heals the server, and nothing is lost",
          .timeLimit(.minutes(3)))
    func restoredPostgresDump() async throws {
        var logger = Logger(label: "e2e.postgres")
        logger.logLevel = .error
        let (url, drop) = try await PostgresTestDatabase.create(logger: logger)
        let root = try temporaryDirectory("restored-postgres")
        defer { try? FileManager.default.removeItem(at: root) }
        let dump = root.appendingPathComponent("backup.dump").path
        do {
            try await RestoredServerScenario(root: root, database: url).run(
                backUp: { try await PostgresTool.run("pg_dump", ["--format=custom", "--file=\(dump)", "--dbname=\(url)"]) },
                restore: {
                    // What an operator restoring into a lost cluster does: the database is
                    // created anew (empty) and filled from the dump.
                    let admin = PostgresTestDatabase.adminURL ?? url
                    let name = try PostgresTool.databaseName(of: url)
                    try await PostgresTool.run("psql", ["--quiet", "--dbname=\(admin)", "--command=DROP DATABASE \(name) WITH (FORCE)"])
                    try await PostgresTool.run("psql", ["--quiet", "--dbname=\(admin)", "--command=CREATE DATABASE \(name)"])
                    try await PostgresTool.run("pg_restore", ["--exit-on-error", "--no-owner", "--dbname=\(url)", dump])
                })
        } catch {
            await drop()
            throw error
        }
        await drop()
    }
}

/// PostgreSQL's client programs (`pg_dump`, `pg_restore`, `psql`), found on `PATH` or in the
/// Debian layout, run to completion with a bound on their time.
enum PostgresTool {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `name` with `arguments`; a non-zero exit is an error carrying what it printed.
    static func run(_ name: String, _ arguments: [String], timeout: Duration = .seconds(60)) async throws {
        let process = Process()
        process.executableURL = try executable(name)
        process.arguments = arguments
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            process.terminate()
            throw Failure(description: "\(name) did not finish within \(timeout)")
        }
        let printed = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(name) \(arguments.first ?? "") exited with \(process.terminationStatus): \(printed)")
        }
    }

    /// The database name in a postgres:// URL.
    static func databaseName(of url: String) throws -> String {
        let name = URLComponents(string: url).map { String($0.path.dropFirst()) } ?? ""
        guard !name.isEmpty else { throw Failure(description: "the test database URL names no database") }
        return name
    }

    private static func executable(_ name: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"
        var directories = path.split(separator: ":").map(String.init)
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        directories += versions.sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
        for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return URL(fileURLWithPath: "\(directory)/\(name)")
        }
        throw Failure(description: "\(name) is not installed (looked on PATH and in /usr/lib/postgresql/*/bin)")
    }
}
