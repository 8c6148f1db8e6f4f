import Foundation

/// The outcome of a live run: what was measured and every check's verdict. It is also the
/// `live` part of the JSON report (`cloak-sim live --report PATH`, schema in
/// `Simulator/Schemas/live-report.schema.json`).
public struct LiveResult: Sendable, Codable {
    /// The options that produced it (what a person needs to repeat it).
    public struct Options: Sendable, Codable {
        /// Server URLs.
        public var servers: [String]
        /// Accounts.
        public var accounts: Int
        /// Devices per account.
        public var devices: Int
        /// Seconds of workload asked for.
        public var durationSeconds: Double
        /// Operations per second asked for.
        public var rate: Double
        /// The workload's seed.
        public var seed: UInt64
        /// The operation cap.
        public var operationsMax: Int
        /// Seconds allowed to settle.
        public var settleSeconds: Double
        /// The server database scanned for canaries, if any.
        public var serverDatabase: String?
    }

    /// One check's verdict.
    public struct Check: Sendable, Codable, Equatable {
        /// convergence, durability, canaries, integrity or liveness.
        public var name: String
        /// Whether it passed.
        public var passed: Bool
        /// A sentence: what was checked and what was found.
        public var detail: String
    }

    /// One bar of the latency histogram.
    public struct Bin: Sendable, Codable, Equatable {
        /// "≤ 15 ms".
        public var label: String
        /// The bucket's upper bound (nil for the last, open bucket).
        public var upperMillis: Double?
        /// Samples in it.
        public var count: Int
    }

    /// What the confidentiality scan read and found.
    public struct CanaryScan: Sendable, Codable, Equatable {
        /// Canaries the workload wrote.
        public var canaries: Int
        /// Bytes of the server's database files read (0 when no file was given).
        public var serverBytes: Int
        /// Whether a server database was given.
        public var serverScanned: Bool
        /// Bytes of the devices' store directories read.
        public var clientBytes: Int
        /// Files of the devices' stores read.
        public var clientFiles: Int
        /// Where a canary was found ("file (encoding)"; empty when none).
        public var findings: [String]
    }

    /// The options.
    public var options: Options
    /// Seconds to create the accounts and link their devices.
    public var setupSeconds: Double
    /// Seconds the workload ran.
    public var workloadSeconds: Double
    /// Operations handed to a device.
    public var issued: Int
    /// Operations skipped because their device was still busy with earlier ones.
    public var skipped: Int
    /// Operations an API call accepted, by kind.
    public var operations: [String: Int]
    /// Accepted operations per second of workload.
    public var throughput: Double
    /// Operations accepted in each second since the workload started.
    public var acceptedPerSecond: [Int]
    /// Renders (one device showing another's operation) in each second since the workload started.
    public var rendersPerSecond: [Int]
    /// Latency from the API call on one device to the render on another: every kind under
    /// "all", and each kind.
    public var latency: [String: LatencySummary]
    /// The histogram of every latency sample.
    public var latencyHistogram: [Bin]
    /// Renders that never happened on some device, by kind (branched away, deleted or renamed
    /// over first: a loss would fail the durability check).
    public var unrendered: [String: Int]
    /// API calls refused, by error code.
    public var apiErrors: [String: Int]
    /// Errors the servers answered to background sync, by code.
    public var serverErrors: [String: Int]
    /// Security alarms the devices raised, by kind.
    public var alarms: [String: Int]
    /// Up to 20 alarm details.
    public var alarmDetails: [String]
    /// Per account, milliseconds from the end of the workload until every device showed the
    /// same state (nil: not within the settle time).
    public var convergenceMillis: [Double?]
    /// The confidentiality scan.
    public var canaryScan: CanaryScan
    /// Every check.
    public var checks: [Check]

    /// Whether every check passed.
    public var passed: Bool { checks.allSatisfy(\.passed) }

    /// What `cloak-sim live` prints.
    public var text: String {
        var lines: [String] = []
        let accepted = operations.values.reduce(0, +)
        lines.append(String(format: "setup: %ld accounts × %ld devices in %.1f s", options.accounts, options.devices, setupSeconds))
        lines.append(String(format: "workload: %.1f s, %ld operations accepted (%.1f/s), %ld skipped (device busy)",
                            workloadSeconds, accepted, throughput, skipped))
        lines.append("  " + Self.list(operations))
        let renders = rendersPerSecond.reduce(0, +)
        lines.append("latency, API call on one device → rendered on another: \(latency["all"]?.text ?? "no samples")")
        for (kind, summary) in latency.sorted(by: { $0.key < $1.key }) where kind != "all" {
            lines.append("  \(kind): \(summary.text)")
        }
        lines.append(String(format: "renders: %ld (%.1f/s)", renders, workloadSeconds > 0 ? Double(renders) / workloadSeconds : 0)
            + (unrendered.isEmpty ? "" : "; never rendered (superseded first): \(Self.list(unrendered))"))
        lines.append("errors: API \(Self.list(apiErrors)); server \(Self.list(serverErrors)); alarms \(Self.list(alarms))")
        let converged = convergenceMillis.compactMap { $0 }.sorted()
        if let slowest = converged.last {
            lines.append(String(format: "convergence after the workload: %ld/%ld accounts, median %.0f ms, slowest %.0f ms",
                                converged.count, convergenceMillis.count, converged[converged.count / 2], slowest))
        }
        lines.append("checks:")
        for check in checks {
            lines.append("  \(check.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(check.passed ? "passed" : "FAILED")  \(check.detail)")
        }
        lines.append("verdict: \(passed ? "PASSED" : "FAILED")")
        return lines.joined(separator: "\n")
    }

    static func list(_ counts: [String: Int]) -> String {
        counts.isEmpty ? "none" : counts.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.key) \($0.value)" }
            .joined(separator: ", ")
    }
}

extension LiveResult.Options {
    init(_ options: LiveOptions) {
        servers = options.servers.map(\.absoluteString)
        accounts = options.accounts
        devices = options.devices
        durationSeconds = options.durationSeconds
        rate = options.rate
        seed = options.seed
        operationsMax = options.operationsMax
        settleSeconds = options.settleSeconds
        serverDatabase = options.serverDatabase?.path
    }
}
