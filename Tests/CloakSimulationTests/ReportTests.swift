import Foundation
import Testing

@testable import CloakSimulation

#if canImport(FoundationXML)
import FoundationXML
#endif

@Suite("cloak-sim reports: the JSON follows its schema, the HTML page is self-contained and carries its figures")
struct ReportTests {
    /// A live result with a little of everything, including text that must be escaped.
    static func liveResult(passed: Bool = true) -> LiveResult {
        var latency = LatencyDistribution()
        for value in [3.0, 12, 14, 40, 41, 250] { latency.record(value) }
        let checks = [
            LiveResult.Check(name: "liveness", passed: true, detail: "6 operations accepted"),
            LiveResult.Check(name: "canaries", passed: passed, detail: passed ? "none" : "FOUND in <script>&\"x\""),
        ]
        return LiveResult(
            options: .init(
                servers: ["ws://127.0.0.1:9/v1/sync"], accounts: 3, devices: 2, durationSeconds: 3, rate: 6, seed: 7,
                operationsMax: 100, settleSeconds: 10, serverDatabase: nil),
            setupSeconds: 1.5, workloadSeconds: 3, issued: 18, skipped: 1, operations: ["append": 12, "edit": 5],
            throughput: 5.7, acceptedPerSecond: [5, 6, 6], rendersPerSecond: [4, 6, 7],
            latency: ["all": latency.summary, "append": latency.summary],
            latencyHistogram: latency.occupiedBins.map { .init(label: $0.label, upperMillis: $0.upperMillis, count: $0.count) },
            unrendered: ["append": 1], apiErrors: ["RATE_LIMITED": 2], serverErrors: [:], alarms: [:], alarmDetails: [],
            convergenceMillis: [12.5, nil, 0], canaryScan: .init(
                canaries: 17, serverBytes: 0, serverScanned: false, clientBytes: 4096, clientFiles: 12, findings: []),
            checks: checks)
    }

    @Test("the live page has one html element, every figure with its data, and nothing external")
    func livePage() throws {
        let result = Self.liveResult(passed: false)
        let html = HTMLReport.render(SimulationReport.page(result))
        let page = try ParsedPage(html)
        #expect(page.count("html") == 1 && page.count("body") == 1 && page.count("head") == 1)
        #expect(page.figureIDs == ["latency-histogram", "throughput", "convergence", "latency-by-kind", "operations", "faults"])
        #expect(page.values(in: "latency-histogram") == result.latencyHistogram.map { Double($0.count) })
        #expect(page.labels(in: "latency-histogram") == result.latencyHistogram.map(\.label))
        #expect(page.lineValues(in: "throughput", series: "operations accepted/s") == [5, 6, 6])
        #expect(page.lineValues(in: "throughput", series: "renders/s") == [4, 6, 7])
        #expect(page.values(in: "convergence") == [12.5, 0, 0])
        #expect(page.labels(in: "convergence") == ["a0", "a1 (not converged)", "a2"])
        #expect(page.checks == ["liveness": true, "canaries": false])
        #expect(page.attribute("verdict", "data-passed") == "false")
        #expect(page.text.contains("FOUND in <script>&\"x\""))  // escaped in the file, intact once parsed
        #expect(page.count("script") == 0)
        try Self.expectSelfContained(html, page)
    }

    @Test("the live JSON report follows Simulator/Schemas/live-report.schema.json")
    func liveJSON() throws {
        let schema = try JSONSchema.load("live-report.schema.json")
        let json = try JSONValue.parse(SimulationReport.json(Self.liveResult()))
        #expect(schema.validate(json) == [])
        #expect(json["schema"] == .string(SimulationReport.liveSchema))
        #expect(json["result"]?["convergenceMillis"] == .array([.number(12.5, integral: false), .null, .number(0, integral: true)]))
    }

    @Test("the schema validator rejects what the schema forbids (so the schema tests can fail)")
    func validatorRejects() throws {
        let schema = try JSONSchema.load("live-report.schema.json")
        guard case .object(var document) = try JSONValue.parse(SimulationReport.json(Self.liveResult())),
            case .object(var result) = document["result"]
        else { throw CancellationError() }
        result["throughput"] = .string("fast")
        result["surprise"] = .bool(true)
        result["checks"] = .array([])
        result.removeValue(forKey: "latency")
        document["result"] = .object(result)
        document["mode"] = .string("run")
        let errors = schema.validate(.object(document))
        #expect(errors.contains("$.result.throughput: is string, expected number"))
        #expect(errors.contains("$.result: unexpected member surprise"))
        #expect(errors.contains("$.result.checks: fewer than 1 items"))
        #expect(errors.contains("$.result: lacks latency"))
        #expect(errors.contains("$.mode: is not the constant"))
    }

    @Test("a run batch's report: schema, faults injected and detected, every seed", .timeLimit(.minutes(3)))
    func runReport() throws {
        let template = SimOptions(seed: 11, accounts: 2, devices: 2, ops: 30, faults: .all)
        let results = (0..<2).map { offset in
            var options = template
            options.seed += UInt64(offset)
            return SimWorld(options: options).run()
        }
        let summary = SimBatch.Summary(
            seeds: 2, failed: results.filter { !$0.passed }.count, failingSeeds: results.filter { !$0.passed }.map(\.options.seed),
            seconds: 1, results: results)
        let report = RunReport(summary, template: template, jobs: 1)
        #expect(report.results.map(\.seed) == [11, 12])
        #expect(report.delivery.count > 0)
        #expect(report.createdPerVirtualSecond.reduce(0, +) > 0)
        // Seconds count from the workload's start, not from the virtual clock's epoch.
        #expect(report.createdPerVirtualSecond.count <= Int(template.workloadMillis / 1_000) + 2)
        #expect(report.results.allSatisfy { $0.convergenceMillis.count == 2 })

        let schema = try JSONSchema.load("run-report.schema.json")
        #expect(schema.validate(try JSONValue.parse(SimulationReport.json(report))) == [])

        let html = HTMLReport.render(SimulationReport.page(report))
        let page = try ParsedPage(html)
        #expect(page.count("html") == 1)
        #expect(Set(page.figureIDs).isSuperset(of: ["faults", "latency-histogram", "convergence", "throughput", "stats", "seeds"]))
        let injected = page.bars(in: "faults").filter { $0.series == "injected" }
        #expect(Dictionary(uniqueKeysWithValues: injected.map { ($0.label, Int($0.value)) })
            .filter { $0.value > 0 } == report.faultsInjected.filter { $0.value > 0 })
        #expect(page.values(in: "latency-histogram").reduce(0, +) == Double(report.delivery.count))
        #expect(page.rows(in: "seeds") == 2)
        try Self.expectSelfContained(html, page)
    }

    /// Nothing the page could fetch: no script, link, image, frame or object; no src or href
    /// (other than a fragment); no CSS url() or @import; no http(s) address anywhere.
    static func expectSelfContained(_ html: String, _ page: ParsedPage) throws {
        for element in ["script", "link", "img", "iframe", "object", "embed", "image", "use", "audio", "video", "source"] {
            #expect(page.count(element) == 0, "the page has a <\(element)>")
        }
        #expect(page.externalAttributes.isEmpty, "external references: \(page.externalAttributes)")
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(!html.contains("url(") && !html.contains("@import"))
    }
}
