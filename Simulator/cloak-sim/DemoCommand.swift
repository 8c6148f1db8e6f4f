import ArgumentParser
import CloakSimulation
import Foundation
import Logging

/// `cloak-sim demo`: three devices of one account against a running server.
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

    func validate() throws {
        guard let url = URL(string: server), url.scheme == "ws" || url.scheme == "wss", url.host?.isEmpty == false else {
            throw ValidationError("--server \(server) is not a server URL: it looks like ws://HOST:PORT/v1/sync")
        }
    }

    func run() async throws {
        guard let url = URL(string: server) else { throw ValidationError("--server \(server) is not a URL") }
        var logger = Logger(label: "cloak.demo")
        logger.logLevel = .error
        let files = database.map { path in ["", "-wal", "-shm"].map { URL(fileURLWithPath: path + $0) } } ?? []
        let report: Demo.Report
        do {
            report = try await Demo(
                options: .init(server: url, databaseFiles: files, workDirectory: workDir.map(URL.init(fileURLWithPath:))),
                logger: logger
            ).run()
        } catch {
            // A sentence naming the server, never a Swift value like `notConnected`.
            FileHandle.standardError.write(Data("cloak-sim: \(error)\n".utf8))
            throw ExitCode(1)
        }
        print(report.text, terminator: "")
        if !report.converged || !report.leaks.isEmpty { throw ExitCode(1) }
    }
}
