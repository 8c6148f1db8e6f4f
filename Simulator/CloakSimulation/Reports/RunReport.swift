import Foundation

/// A deterministic batch (`cloak-sim run`) as its report carries it: the options, every seed's
/// result (trace hash, failures, stats, measurements), and totals over the batch. The `result`
/// of the JSON report (schema in `Simulator/Schemas/run-report.schema.json`).
///
/// ```swift
/// let summary = await SimBatch(first: 1, count: 20, template: template, jobs: 2).run { _ in } report: { _ in }
/// try SimulationReport.write(RunReport(summary, template: template, jobs: 2), json: jsonURL, html: htmlURL)
/// ```
public struct RunReport: Sendable, Codable {
    /// The batch's options.
    public struct Options: Sendable, Codable {
        /// The first seed.
        public var firstSeed: UInt64
        /// Seeds run.
        public var seeds: Int
        /// Accounts per run.
        public var accounts: Int
        /// Devices each account starts with.
        public var devices: Int
        /// Operations per account.
        public var ops: Int
        /// The fault profile.
        public var faults: String
        /// Worker threads.
        public var jobs: Int
    }

    /// One seed's outcome.
    public struct Seed: Sendable, Codable {
        /// The seed.
        public var seed: UInt64
        /// Whether every check passed.
        public var passed: Bool
        /// The trace hash (equal for equal seeds).
        public var traceHash: String
        /// Virtual milliseconds the run took.
        public var virtualMillis: UInt64
        /// Its counters (operations, "fault …", "detected …", lifecycle, events).
        public var stats: [String: Int]
        /// Failed checks.
        public var failures: [Failure]
        /// Virtual delivery latency.
        public var delivery: LatencySummary
        /// Per account, virtual milliseconds from healing to settled (nil: did not converge).
        public var convergenceMillis: [UInt64?]
    }

    /// One failed check of one seed.
    public struct Failure: Sendable, Codable {
        /// The check.
        public var check: String
        /// What happened.
        public var detail: String
    }

    /// One histogram bucket.
    public struct Bin: Sendable, Codable {
        /// "≤ 15 ms".
        public var label: String
        /// Samples in it.
        public var count: Int
    }

    /// The options.
    public var options: Options
    /// Wall seconds.
    public var seconds: Double
    /// Seeds per wall second.
    public var seedsPerSecond: Double
    /// Seeds that failed.
    public var failed: Int
    /// Their seeds.
    public var failingSeeds: [UInt64]
    /// Every seed, in order.
    public var results: [Seed]
    /// Every counter summed over the seeds.
    public var stats: [String: Int]
    /// Faults injected, by kind (the "fault …" counters).
    public var faultsInjected: [String: Int]
    /// Hostile actions whose alarm was raised, by kind (the "detected …" counters).
    public var faultsDetected: [String: Int]
    /// Virtual delivery latency over every seed.
    public var delivery: LatencySummary
    /// Its histogram (the occupied buckets).
    public var deliveryHistogram: [Bin]
    /// Settling times of every account of every seed, as a histogram.
    public var convergenceHistogram: [Bin]
    /// Messages created in each virtual second, summed over the seeds.
    public var createdPerVirtualSecond: [Int]

    /// Whether every seed passed.
    public var passed: Bool { failed == 0 }

    /// Builds the report of a finished batch.
    public init(_ summary: SimBatch.Summary, template: SimOptions, jobs: Int) {
        options = Options(
            firstSeed: template.seed, seeds: summary.seeds, accounts: template.accounts, devices: template.devices,
            ops: template.ops, faults: template.faults.rawValue, jobs: jobs)
        seconds = summary.seconds
        seedsPerSecond = summary.seconds > 0 ? Double(summary.seeds) / summary.seconds : 0
        failed = summary.failed
        failingSeeds = summary.failingSeeds
        var totals = Tally()
        var delivery = LatencyDistribution()
        var settling = LatencyDistribution()
        var created = RateSeries()
        results = summary.results.map { result in
            for (name, count) in result.stats { totals.add(name, count) }
            delivery.merge(result.measurements.delivery)
            for millis in result.measurements.convergenceMillis.compactMap({ $0 }) { settling.record(Double(millis)) }
            created.merge(result.measurements.created)
            return Seed(
                seed: result.options.seed, passed: result.passed, traceHash: result.traceHash,
                virtualMillis: result.virtualMillis, stats: result.stats,
                failures: result.failures.map { Failure(check: $0.check, detail: $0.detail) },
                delivery: result.measurements.delivery.summary, convergenceMillis: result.measurements.convergenceMillis)
        }
        stats = totals.counts
        faultsInjected = Self.strip("fault ", from: totals.counts)
        faultsDetected = Self.strip("detected ", from: totals.counts)
        delivery.prepare()
        self.delivery = delivery.summary
        deliveryHistogram = delivery.occupiedBins.map { Bin(label: $0.label, count: $0.count) }
        convergenceHistogram = settling.occupiedBins.map { Bin(label: $0.label, count: $0.count) }
        createdPerVirtualSecond = created.perSecond
    }

    static func strip(_ prefix: String, from counts: [String: Int]) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: counts.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
    }
}

extension SimulationReport {
    /// A batch's page: checks (one per seed, failing seeds first), totals, faults injected and
    /// detected, delivery latency, settling times, messages over virtual time, the counters and
    /// every seed.
    public static func page(_ report: RunReport) -> ReportPage {
        let options = report.options
        var page = ReportPage(
            title: "cloak-sim run: \(options.seeds) seeds, faults \(options.faults)",
            subtitle: "seeds \(options.firstSeed)…\(options.firstSeed + UInt64(max(0, options.seeds - 1))) · \(options.accounts) "
                + "accounts × \(options.devices) devices × \(options.ops) operations · \(options.jobs) jobs",
            passed: report.passed)
        let failing = report.results.filter { !$0.passed }
        page.verdicts = [ReportPage.Verdict(
            name: "seeds", passed: report.passed,
            detail: report.passed ? "all \(options.seeds) seeds passed every check"
                : "\(report.failed) of \(options.seeds) failed: seeds \(report.failingSeeds.prefix(20).map(String.init).joined(separator: " "))")]
        for seed in failing.prefix(50) {
            page.verdicts.append(.init(
                name: "seed \(seed.seed)", passed: false, detail: seed.failures.prefix(3).map { "\($0.check): \($0.detail)" }.joined(separator: " · ")))
        }
        page.facts = [
            ("seeds", "\(options.seeds) (\(report.failed) failed)"),
            ("speed", String(format: "%.2f seeds/s (%.1f s wall)", report.seedsPerSecond, report.seconds)),
            ("delivery (virtual)", report.delivery.text),
        ]
        let kinds = Set(report.faultsInjected.keys).union(report.faultsDetected.keys).sorted()
        page.figures.append(.bars(
            id: "faults", title: "Faults injected and detected",
            caption: "Summed over every seed. Detected counts the hostile server's tampering, forging and replays whose alarm "
                + "the receiving device raised; network and crash faults raise no alarm, they must only heal.",
            series: ["injected", "detected"],
            groups: kinds.map { .init(label: $0, values: [Double(report.faultsInjected[$0] ?? 0), Double(report.faultsDetected[$0] ?? 0)]) }))
        page.figures.append(.bars(
            id: "latency-histogram", title: "Delivery latency (virtual time)",
            caption: "Virtual milliseconds from the API call that created a message to its presence on another member device, every seed.",
            series: ["messages"], groups: report.deliveryHistogram.map { .init(label: $0.label, values: [Double($0.count)]) }))
        page.figures.append(.bars(
            id: "convergence", title: "Convergence time per account (virtual time)",
            caption: "Virtual milliseconds from healing every fault to the last change on the account's devices, every account of every seed.",
            series: ["accounts"], groups: report.convergenceHistogram.map { .init(label: $0.label, values: [Double($0.count)]) }))
        page.figures.append(.series(
            id: "throughput", title: "Messages created over virtual time",
            caption: "Messages created by API calls in each virtual second, summed over the seeds.", xLabel: "virtual seconds",
            lines: [.init(name: "messages/s", values: report.createdPerVirtualSecond.map(Double.init))]))
        page.figures.append(.table(
            id: "stats", title: "Counters", caption: "SimResult.stats summed over the seeds, and the mean per seed.",
            header: ["counter", "total", "per seed"],
            rows: report.stats.sorted { $0.key < $1.key }.map { name, total in
                [name, "\(total)", String(format: "%.1f", Double(total) / Double(max(1, options.seeds)))]
            }))
        page.figures.append(.table(
            id: "failures", title: "Failures", caption: "Every failed check (at most 500).", header: ["seed", "check", "detail"],
            rows: failing.flatMap { seed in seed.failures.map { ["\(seed.seed)", $0.check, $0.detail] } }.prefix(500).map { $0 }))
        page.figures.append(.table(
            id: "seeds", title: "Seeds", caption: "Every seed's result (at most 2,000 rows).",
            header: ["seed", "verdict", "trace", "virtual s", "events", "delivery p99", "failures"],
            rows: report.results.prefix(2_000).map { seed in
                ["\(seed.seed)", seed.passed ? "passed" : "FAILED", seed.traceHash, "\(seed.virtualMillis / 1_000)",
                 "\(seed.stats["events"] ?? 0)", ms(seed.delivery.p99Millis), "\(seed.failures.count)"]
            }))
        return page
    }
}
