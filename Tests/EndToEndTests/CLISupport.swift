import CloakServer
import CloakServerHTTP
import CloakTesting
import Foundation
import Logging
import Testing

/// What one run of the real `cloak` executable did.
struct CLIResult: CustomStringConvertible {
    let arguments: [String]
    let status: Int32
    let output: String
    let errors: String
    /// Wall time of the run.
    let seconds: Double

    var description: String { "cloak \(arguments.joined(separator: " ")) → \(status)\nstdout: \(output)\nstderr: \(errors)" }
}

/// A server URL where nothing listens (port 1 refuses every connection).
let downServer = "ws://127.0.0.1:1/v1/sync"

/// Runs `cloak` with `arguments` (and only the `CLOAK_…` variables given), killed after
/// `timeout`; `input` goes to its standard input.
func runCloak(
    _ arguments: [String], environment: [String: String] = [:], input: String? = nil, timeout: Duration = .seconds(60)
) async throws -> CLIResult {
    let process = Process()
    process.executableURL = try ServerProcess.binary(named: "cloak")
    process.arguments = arguments
    var base = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CLOAK_") }
    base.merge(environment) { $1 }
    process.environment = base
    let output = Pipe()
    let errors = Pipe()
    let stdin = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = stdin
    let clock = ContinuousClock()
    let started = clock.now
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try? stdin.fileHandleForWriting.close()
    let deadline = Task {
        try await Task.sleep(for: timeout)
        process.terminate()
    }
    let (status, out, err) = try await onOwnThread {
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, out, err)
    }
    deadline.cancel()
    let elapsed = clock.now - started
    return CLIResult(
        arguments: arguments, status: status, output: out, errors: err,
        seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

/// The lines of `text` that read like a Swift value rather than a sentence: `name(` right
/// after an identifier (`unknownDevice(…)`, `storage("…")`, `Error(`), or a lowerCamelCase
/// word (`notConnected`, a raw enum case).
func swiftValueLines(_ text: String) -> [String] {
    text.split(separator: "\n").map(String.init).filter { line in
        line.range(of: #"[A-Za-z_][A-Za-z0-9_]*\("#, options: .regularExpression) != nil
            || line.range(of: #"(^|[^A-Za-z0-9_/.-])[a-z]+[A-Z][A-Za-z]*"#, options: .regularExpression) != nil
    }
}

/// Checks that a run failed with `status`, said `expected` on stderr as a `cloak: ` sentence,
/// and printed nothing that reads like a Swift value.
func expectSentence(
    _ result: CLIResult, status: Int32, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(result.status == status, "\(result)", sourceLocation: sourceLocation)
    #expect(result.errors.contains(expected), "\(result)", sourceLocation: sourceLocation)
    #expect(swiftValueLines(result.output + result.errors).isEmpty, "reads like a Swift value: \(result)",
            sourceLocation: sourceLocation)
}

/// Runs `body` against an in-process server on `store` (so a test can keep the store across
/// server runs, back it up and restore it).
func withServer<T: Sendable>(store: any ServerStore, _ body: @Sendable (RunningServer) async throws -> T) async throws -> T {
    var logger = Logger(label: "e2e.cli.server")
    logger.logLevel = .error
    return try await CloakHTTPServer.withRunning(configuration: .init(port: 0), store: store, logger: logger, body)
}
