import ArgumentParser
import CloakSimulation
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `cloak-sim live`: real WebSocket clients against running servers, under a fixed-rate
/// workload, with throughput, latency and end-of-run checks.
struct LiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Load running cloak-server processes with real devices: accounts created and devices linked through "
            + "the real flows, then a workload at a fixed rate; prints throughput, end-to-end latency and errors, then "
            + "checks convergence, durability and canaries.")

    @Option(name: .long, help: "A server's WebSocket URL (repeat to spread the devices over several servers).")
    var server: [String] = []

    @Option(name: .long, help: "Accounts.")
    var accounts: Int = 10

    @Option(name: .long, help: "Devices per account.")
    var devices: Int = 3

    @Option(name: .long, help: "Seconds of workload.")
    var duration: Double = 15

    @Option(name: .long, help: "Operations per second over all devices (default: 2 per account).")
    var rate: Double?

    @Option(name: .long, help: "The server's SQLite database file, scanned for canaries (with its -wal and -shm).")
    var serverDb: String?

    @Option(name: .long, help: "Operations issued at most.")
    var maxOps: Int = 200_000

    @Option(name: .long, help: "Seconds allowed after the workload for every account to converge.")
    var settle: Double = 60

    @Option(name: .long, help: "The workload's seed (default: a random one, printed first).")
    var seed: UInt64?

    @Option(name: .long, help: "Write the JSON report here.")
    var report: String?

    @Option(name: .long, help: "Write the HTML report here (one self-contained page).")
    var html: String?

    func validate() throws {
        guard !server.isEmpty else { throw ValidationError("give at least one --server ws://HOST:PORT/v1/sync") }
        for url in server where URL(string: url)?.scheme.map({ $0 == "ws" || $0 == "wss" }) != true {
            throw ValidationError("--server \(url) is not a ws:// or wss:// URL")
        }
        guard accounts >= 1, devices >= 1, duration > 0, maxOps >= 1, settle > 0 else {
            throw ValidationError("--accounts, --devices and --max-ops must be at least 1, --duration and --settle positive")
        }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        // Found out before the run rather than after it.
        for (flag, path) in [("--report", report), ("--html", html)] {
            guard let path else { continue }
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("\(flag) \(path): the directory \(directory) does not exist; create it first")
            }
        }
    }

    func run() async throws {
        let options = LiveOptions(
            servers: server.compactMap(URL.init(string:)), accounts: accounts, devices: devices, durationSeconds: duration,
            rate: rate, serverDatabase: serverDb.map { URL(fileURLWithPath: $0) }, operationsMax: maxOps,
            settleSeconds: settle, seed: seed ?? UInt64.random(in: 1...999_999))
        print("cloak-sim live: \(options)")
        let result: LiveResult
        do {
            result = try await LiveSimulation(options: options).run { line in ProgressLine.show(line) }
        } catch {
            ProgressLine.end()
            FileHandle.standardError.write(Data("cloak-sim live: \(error)\n".utf8))
            throw ExitCode(2)
        }
        ProgressLine.end()
        print(result.text)
        do {
            try SimulationReport.write(
                result, json: report.map { URL(fileURLWithPath: $0) }, html: html.map { URL(fileURLWithPath: $0) })
        } catch {
            FileHandle.standardError.write(Data(
                ("cloak-sim live: could not write the report (\(error.localizedDescription)); "
                    + "check the paths given to --report and --html\n").utf8))
            throw ExitCode(result.passed ? 2 : 1)
        }
        if let report { print("JSON report: \(report)") }
        if let html { print("HTML report: \(html)") }
        if !result.passed { throw ExitCode(1) }
    }
}

/// The progress line on stderr: rewritten in place on a terminal, one line per update otherwise
/// (a log file gets no control characters).
enum ProgressLine {
    static let terminal = isatty(STDERR_FILENO) == 1

    static func show(_ line: String) {
        FileHandle.standardError.write(Data((terminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
    }

    /// Clears the line (on a terminal) before the results are printed.
    static func end() {
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
