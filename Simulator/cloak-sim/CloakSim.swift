import ArgumentParser
import CloakSimulation
import Foundation
import Logging

/// `cloak-sim`: the Cloak simulator. `run` is the deterministic mode (seeded, in one process),
/// `live` loads running servers with real devices, `demo` drives three devices against one.
@main
struct CloakSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-sim", abstract: "Cloak's multi-device simulator.", subcommands: [RunCommand.self, LiveCommand.self, DemoCommand.self])
}

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Three devices of one account write concurrently, one offline, then converge; the server's "
            + "database is scanned for the demo's canary strings.")

    @Option(name: .long, help: "Server WebSocket URL.")
    var server: String = "ws://127.0.0.1:8080/v1/sync"

    @Option(name: .long, help: "The server's SQLite database file to scan for canaries.")
    var database: String?

    @Option(name: .long, help: "Keep the devices' stores in this directory (default: a temporary one).")
    var workDir: String?

    func run() async throws {
        guard let url = URL(string: server) else { throw ValidationError("--server must be a URL") }
        var logger = Logger(label: "cloak.demo")
        logger.logLevel = .error
        let files = database.map { path in ["", "-wal", "-shm"].map { URL(fileURLWithPath: path + $0) } } ?? []
        let report = try await Demo(
            options: .init(server: url, databaseFiles: files, workDirectory: workDir.map(URL.init(fileURLWithPath:))),
            logger: logger
        ).run()
        print(report.text, terminator: "")
        if !report.converged || !report.leaks.isEmpty { throw ExitCode(1) }
    }
}
