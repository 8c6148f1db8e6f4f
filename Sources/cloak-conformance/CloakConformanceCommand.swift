import ArgumentParser
import CloakConformance
import Foundation
import Logging

/// `cloak-conformance`: runs the server conformance scenarios of `Protocol/conformance/`
/// against a running sync server and reports each one; exits non-zero if any fails.
@main
struct CloakConformanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-conformance",
        abstract: "Run Cloak's server conformance scenarios against a sync server.",
        subcommands: [Run.self],
        defaultSubcommand: Run.self)
}

/// Runs scenario files.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run scenarios (a directory or files).")

    @Option(help: "The server's WebSocket URL, e.g. ws://127.0.0.1:8080/v1/sync.")
    var server: String

    @Option(name: .customLong("setting"), help: "Server policy the scenarios may need, as name=value (repeatable).")
    var settings: [String] = []

    @Argument(help: "Scenario files or directories.")
    var paths: [String] = ["Protocol/conformance"]

    func run() async throws {
        var known = ConformanceSettings()
        for setting in settings {
            let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("a setting is name=value, not \(setting)") }
            try known.set(parts[0], parts[1])
        }
        var logger = Logger(label: "cloak.conformance")
        logger.logLevel = .error
        let runner = ScenarioRunner(server: server, settings: known, logger: logger)
        var failed = 0
        for path in paths {
            for scenario in try Scenario.load(path) {
                let outcome = await runner.run(scenario)
                switch outcome {
                case .passed:
                    print("PASS  \(scenario.file): \(scenario.name)")
                case .skipped(let reason):
                    print("SKIP  \(scenario.file): \(scenario.name) (\(reason))")
                case .failed(let step, let reason):
                    failed += 1
                    print("FAIL  \(scenario.file): \(scenario.name)\n      at \(step)\n      \(reason)")
                }
            }
        }
        if failed > 0 { throw ExitCode.failure }
    }
}
