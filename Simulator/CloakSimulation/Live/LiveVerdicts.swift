import Foundation

/// Turns what a live run measured into its checks, each with a sentence a person can act on.
/// Pure, so each verdict is tested without a network.
struct LiveVerdicts {
    let options: LiveOptions
    let accepted: Int
    let renders: Int
    let convergence: [Double?]
    let durability: (failures: [String], count: Int)
    let scan: LiveResult.CanaryScan
    let alarms: Tally

    var checks: [LiveResult.Check] {
        [liveness, convergenceCheck, durabilityCheck, canaries, integrity]
    }

    /// The run did something: operations were accepted and (with two devices or more) rendered
    /// elsewhere. Without it every other check would pass on an idle run.
    var liveness: LiveResult.Check {
        let needsRenders = options.devices > 1
        let passed = accepted > 0 && (!needsRenders || renders > 0)
        return .init(
            name: "liveness", passed: passed,
            detail: passed
                ? "\(accepted) operations accepted, \(renders) renders on other devices"
                : "\(accepted) operations accepted and \(renders) rendered on other devices: the workload did not run; "
                    + "check the server and the rate")
    }

    var convergenceCheck: LiveResult.Check {
        let late = convergence.enumerated().filter { $0.element == nil }.map(\.offset)
        let settle = LiveOptions.format(options.settleSeconds)
        return .init(
            name: "convergence", passed: late.isEmpty,
            detail: late.isEmpty
                ? "all \(convergence.count) accounts show the same state on every device"
                : "accounts \(late.prefix(10).map(String.init).joined(separator: ", ")) did not converge within \(settle) s "
                    + "after the workload")
    }

    var durabilityCheck: LiveResult.Check {
        .init(
            name: "durability", passed: durability.count == 0,
            detail: durability.count == 0
                ? "\(accepted) accepted operations present on all \(options.devices) devices of their account"
                : "\(durability.count) absences, e.g. \(durability.failures.prefix(3).joined(separator: "; "))")
    }

    var canaries: LiveResult.Check {
        let server =
            scan.serverScanned
            ? "\(Self.bytes(scan.serverBytes)) of server database" : "no server database (give --server-db to scan it)"
        let scope = "\(server), \(Self.bytes(scan.clientBytes)) in \(scan.clientFiles) device store files and the devices' logs"
        return .init(
            name: "canaries", passed: scan.findings.isEmpty,
            detail: scan.findings.isEmpty
                ? "no cloak-canary- string (\(scan.canaries) written) in \(scope)"
                : "FOUND in \(scan.findings.prefix(5).joined(separator: "; ")) (scanned \(scope))")
    }

    /// An honest server causes no security alarm: one would be a false alarm or a real fault.
    var integrity: LiveResult.Check {
        .init(
            name: "integrity", passed: alarms.total == 0,
            detail: alarms.total == 0 ? "no device raised a security alarm" : "alarms raised: \(alarms.text)")
    }

    static func bytes(_ count: Int) -> String {
        count >= 1 << 20 ? String(format: "%.1f MiB", Double(count) / Double(1 << 20))
            : count >= 1 << 10 ? String(format: "%.1f KiB", Double(count) / 1_024) : "\(count) bytes"
    }
}
