@_spi(Simulation) import CloakClient

/// The outcome of one deterministic run.
public struct SimResult: Sendable {
    /// One failed check.
    public struct Failure: Sendable, CustomStringConvertible {
        /// The check: convergence, durability, confidentiality, integrity, revocation, nonce, setup…
        public let check: String
        /// What happened.
        public let detail: String
        /// "check: detail".
        public var description: String { "\(check): \(detail)" }
    }

    /// The options (with the seed) that reproduce the run.
    public let options: SimOptions
    /// The trace hash: equal for equal options.
    public let traceHash: String
    /// Failed checks (empty when the run passed).
    public let failures: [Failure]
    /// Counters: operations, faults injected, alarms raised for hostile actions, lifecycle.
    public let stats: [String: Int]
    /// Virtual milliseconds the run took.
    public let virtualMillis: UInt64
    /// Delivery latency, messages per virtual second and settling time per account, for the
    /// report (`cloak-sim run --report/--html`).
    public let measurements: SimMeasurements

    /// Whether every check passed.
    public var passed: Bool { failures.isEmpty }

    /// A few lines for the terminal.
    public var summary: String {
        var lines = ["seed \(options.seed): \(passed ? "passed" : "FAILED") trace \(traceHash) "
            + "virtual \(virtualMillis / 1000)s events \(stats["events"] ?? 0)",
            "  " + stats.filter { $0.key != "events" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")]
        for failure in failures.prefix(10) { lines.append("  \(failure)") }
        if failures.count > 10 { lines.append("  … and \(failures.count - 10) more") }
        return lines.joined(separator: "\n")
    }
}

extension SimWorld {
    /// Runs the whole scenario: accounts through the real flows, the seeded workload under the
    /// profile's faults, then healing and a liveness phase, then every check.
    public func run() -> SimResult {
        let start = now
        schedule(.serverTick, at: now + 1_000)
        setUpAccounts()
        let setupDeadline = now + 300_000
        run(until: setupDeadline) { !setupDone() }
        if !setupDone() {
            let states = devices.map { "\($0.name)=\($0.status)" }.joined(separator: " ")
            notes.fail("setup", "accounts were not all set up within 300 virtual seconds (\(states); "
                + "failed flows \(notes.flowFailures); log tail: \(logs.all.suffix(5).joined(separator: " | ")))")
        }
        let workloadStart = now
        noteWorkloadStarted()
        scheduleWorkload()
        let faults = enabledFaults()
        scheduleFaults(faults)
        // The hostile assistant's alarms are the assistant's own only while the device log is the
        // one it was granted in: a restored server's fork refuses it for other reasons first.
        scheduleAssistants(hostile: faults.contains(.hostile) && !faults.contains(.restore))
        if faults.contains(.hostile), options.kdfDowngrade { scheduleKDFDowngrades() }
        run(until: workloadStart + options.workloadMillis + 1_000)
        heal()
        noteHealed()
        schedule(after: 5_000) { world in world.witnessWithholdings() }
        let livenessDeadline = now + options.livenessMillis
        while now < livenessDeadline, !livelocked, !(converged() && assistantsSettled()) {
            run(until: min(livenessDeadline, now + 2_000))
            noteRemovalsFromLogs()
        }
        noteRemovalsFromLogs()
        checkAll()
        var stats = notes.operations.merging(notes.faults.mapKeys { "fault \($0)" }) { $0 + $1 }
        stats.merge(notes.detections.mapKeys { "detected \($0)" }) { $0 + $1 }
        stats["events"] = eventsProcessed
        stats["devices"] = devices.count
        stats["linked"] = notes.linked
        stats["removed"] = notes.removed
        stats["recovered"] = notes.recovered
        stats["change sets"] = notes.changeSetsSeen
        return SimResult(
            options: options, traceHash: trace.hex, failures: notes.failures.map { SimResult.Failure(check: $0.check, detail: $0.detail) },
            stats: stats, virtualMillis: now - start, measurements: measurements())
    }

    private func setupDone() -> Bool {
        (0..<options.accounts).allSatisfy { account in
            devices.filter { $0.account == account && $0.status == .member }.count >= options.devices
        }
    }
}

extension Dictionary {
    fileprivate func mapKeys(_ transform: (Key) -> String) -> [String: Value] {
        Dictionary<String, Value>(map { (transform($0.key), $0.value) }, uniquingKeysWith: { $1 })
    }
}
