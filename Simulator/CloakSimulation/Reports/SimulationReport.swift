public import Foundation

/// The report files of `cloak-sim run` and `cloak-sim live`: `--report PATH` writes JSON
/// (`{"schema": …, "mode": "run"|"live", "result": {…}}`, schemas in `Simulator/Schemas/`),
/// `--html PATH` one self-contained page (``HTMLReport``).
///
/// ```swift
/// try SimulationReport.write(result, json: URL(fileURLWithPath: "live.json"), html: URL(fileURLWithPath: "live.html"))
/// ```
public enum SimulationReport {
    /// The `schema` value of a live report.
    public static let liveSchema = "cloak-sim/live-report/v1"
    /// The `schema` value of a run report.
    public static let runSchema = "cloak-sim/run-report/v1"

    struct Envelope<Result: Encodable>: Encodable {
        let schema: String
        let mode: String
        let result: Result
    }

    /// The JSON of a live run.
    public static func json(_ result: LiveResult) throws -> Data {
        try encode(Envelope(schema: liveSchema, mode: "live", result: result))
    }

    /// The JSON of a deterministic batch.
    public static func json(_ report: RunReport) throws -> Data {
        try encode(Envelope(schema: runSchema, mode: "run", result: report))
    }

    /// Writes a live run's JSON and HTML reports (either may be nil).
    public static func write(_ result: LiveResult, json url: URL?, html page: URL?) throws {
        if let url { try json(result).write(to: url, options: .atomic) }
        if let page { try Data(HTMLReport.render(self.page(result)).utf8).write(to: page, options: .atomic) }
    }

    /// Writes a deterministic batch's JSON and HTML reports (either may be nil).
    public static func write(_ report: RunReport, json url: URL?, html page: URL?) throws {
        if let url { try json(report).write(to: url, options: .atomic) }
        if let page { try Data(HTMLReport.render(self.page(report)).utf8).write(to: page, options: .atomic) }
    }

    private static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    /// A live run's page: checks, headline figures, the latency histogram, throughput over
    /// time, convergence per account, latency by kind, and errors and alarms.
    public static func page(_ result: LiveResult) -> ReportPage {
        let options = result.options
        var page = ReportPage(
            title: "cloak-sim live: \(options.accounts) accounts × \(options.devices) devices",
            subtitle: "servers \(options.servers.joined(separator: ", ")) · duration \(LiveOptions.format(options.durationSeconds)) s "
                + "· rate \(LiveOptions.format(options.rate))/s · seed \(options.seed)",
            passed: result.passed)
        page.verdicts = result.checks.map { ReportPage.Verdict(name: $0.name, passed: $0.passed, detail: $0.detail) }
        let all = result.latency["all"]
        page.facts = [
            ("throughput", String(format: "%.1f operations/s accepted (%ld in %.1f s)",
                                  result.throughput, result.operations.values.reduce(0, +), result.workloadSeconds)),
            ("latency", all?.text ?? "no samples"),
            ("setup", String(format: "%.1f s", result.setupSeconds)),
            ("skipped", "\(result.skipped) operations (their device was busy)"),
            ("errors", "API \(LiveResult.list(result.apiErrors)); server \(LiveResult.list(result.serverErrors))"),
            ("alarms", LiveResult.list(result.alarms)),
        ]
        page.figures.append(.bars(
            id: "latency-histogram", title: "End-to-end latency",
            caption: "From the API call on one device to the view rendered on another device of the account "
                + "(every operation kind; buckets in milliseconds).",
            series: ["renders"], groups: result.latencyHistogram.map { .init(label: $0.label, values: [Double($0.count)]) }))
        page.figures.append(.series(
            id: "throughput", title: "Throughput over time",
            caption: "Operations accepted and renders on other devices in each second of the workload.", xLabel: "seconds",
            lines: [
                .init(name: "operations accepted/s", values: result.acceptedPerSecond.map(Double.init)),
                .init(name: "renders/s", values: result.rendersPerSecond.map(Double.init)),
            ]))
        page.figures.append(.bars(
            id: "convergence", title: "Convergence time per account",
            caption: "Milliseconds from the end of the workload until every device of the account showed the same state "
                + "(an account that did not converge within the settle time is labelled so, with no bar).",
            series: ["ms"],
            groups: result.convergenceMillis.enumerated().map { account, millis in
                .init(label: millis == nil ? "a\(account) (not converged)" : "a\(account)", values: [millis ?? 0])
            }))
        page.figures.append(.table(
            id: "latency-by-kind", title: "Latency by operation", caption: "Milliseconds; n is the number of renders measured.",
            header: ["operation", "n", "p50", "p99", "p999", "max"],
            rows: result.latency.sorted { $0.key < $1.key }.map { kind, summary in
                [kind, "\(summary.count)", ms(summary.p50Millis), ms(summary.p99Millis), ms(summary.p999Millis), ms(summary.maxMillis)]
            }))
        page.figures.append(.bars(
            id: "operations", title: "Operations accepted", caption: "By kind.", series: ["operations"],
            groups: result.operations.sorted { $0.key < $1.key }.map { .init(label: $0.key, values: [Double($0.value)]) }))
        var faults: [[String]] = []
        for (source, counts) in [("API call refused", result.apiErrors), ("server error", result.serverErrors),
                                 ("security alarm", result.alarms), ("never rendered", result.unrendered)] {
            for (code, count) in counts.sorted(by: { $0.key < $1.key }) { faults.append([source, code, "\(count)"]) }
        }
        faults += result.alarmDetails.map { ["alarm detail", $0, ""] }
        page.figures.append(.table(
            id: "faults", title: "Faults and alarms",
            caption: "A live run injects no faults: this lists what went wrong on its own, by code. "
                + "\"Never rendered\" counts renders superseded before they happened (not losses).",
            header: ["source", "code", "count"], rows: faults))
        return page
    }

    static func ms(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "-" }
}
