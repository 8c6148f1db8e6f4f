import ArgumentParser
import CloakSimulation
import Foundation

/// `cloak-sim run`: deterministic, seeded runs of many devices against the real server core.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Deterministic runs: accounts of devices under a seeded workload and faults, checked for "
            + "convergence, durability, confidentiality, integrity, revocation and nonce reuse.")

    @Option(name: .long, help: "The first seed.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "How many seeds to run (seed, seed+1, …).")
    var seeds: Int = 1

    @Option(name: .long, help: "Accounts per run.")
    var accounts: Int = 3

    @Option(name: .long, help: "Devices each account starts with.")
    var devices: Int = 3

    @Option(name: .long, help: "Workload operations per account.")
    var ops: Int = 200

    @Option(name: .long, help: "Fault profile: \(FaultProfile.allCases.map(\.rawValue).joined(separator: ", ")).")
    var faults: String = "none"

    @Option(name: .long, help: "Worker threads (default: the machine's cores).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(inversion: .prefixedNo, help: "AI assistants in the workload (default: on with --faults all, off otherwise).")
    var assistants: Bool?

    @Flag(name: .long, help: "With a hostile server, also weaken the Argon2id parameters served to a passphrase recovery.")
    var kdfDowngrade = false

    @Flag(name: .long, help: "Print every seed's result, not only failures.")
    var verbose = false

    @Option(name: .long, help: "Write the JSON report here.")
    var report: String?

    @Option(name: .long, help: "Write the HTML report here (one self-contained page).")
    var html: String?

    func validate() throws {
        guard FaultProfile(rawValue: faults) != nil else {
            throw ValidationError("--faults must be one of \(FaultProfile.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard seeds >= 1, accounts >= 1, devices >= 1, ops >= 0, jobs >= 1 else {
            throw ValidationError("--seeds, --accounts, --devices and --jobs must be at least 1, --ops at least 0")
        }
    }

    func run() async throws {
        DeterministicHashing.ensure()
        let profile = FaultProfile(rawValue: faults) ?? .none
        let template = SimOptions(seed: seed, accounts: accounts, devices: devices, ops: ops, faults: profile, assistants: assistants,
            kdfDowngrade: kdfDowngrade)
        print("cloak-sim run: \(template) seeds=\(seeds) jobs=\(jobs)")
        let batch = SimBatch(first: seed, count: seeds, template: template, jobs: jobs)
        let summary = await batch.run { progress in
            FileHandle.standardError.write(Data((progress.line + "\r").utf8))
        } report: { result in
            if verbose || !result.passed {
                print(result.summary)
                // Flushed at once even into a file or pipe: a failing seed is on disk before the batch ends.
                fflush(nil)
            }
        }
        FileHandle.standardError.write(Data("\n".utf8))
        print(summary.text)
        if report != nil || html != nil {
            try SimulationReport.write(
                RunReport(summary, template: template, jobs: jobs), json: report.map { URL(fileURLWithPath: $0) },
                html: html.map { URL(fileURLWithPath: $0) })
            if let report { print("JSON report: \(report)") }
            if let html { print("HTML report: \(html)") }
        }
        if summary.failed > 0 { throw ExitCode(1) }
    }
}
