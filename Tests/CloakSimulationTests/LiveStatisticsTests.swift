import CloakClient
import CloakProtocol
import Foundation
import Testing

@testable import CloakSimulation

@Suite("The live mode's measurements, without a network")
struct LiveStatisticsTests {
    @Test("percentiles are nearest-rank over every sample, in any order")
    func nearestRank() {
        var latency = LatencyDistribution()
        for value in [40.0, 10, 30, 20, 50, 60, 70, 80, 90, 100].reversed() { latency.record(value) }
        #expect(latency.count == 10)
        #expect(latency.isExact)
        #expect(latency.percentile(0.5) == 50)  // ⌈0.5·10⌉ = 5th
        #expect(latency.percentile(0.99) == 100)  // ⌈9.9⌉ = 10th
        #expect(latency.percentile(0.1) == 10)
        #expect(latency.percentile(0) == 10)  // rank at least 1
        #expect(latency.minMillis == 10 && latency.maxMillis == 100)
        #expect(latency.meanMillis == 55)
        #expect(LatencyDistribution().percentile(0.5) == nil)
    }

    @Test("p999 needs a thousand samples to differ from the maximum")
    func p999() {
        var latency = LatencyDistribution()
        for index in 1...2_000 { latency.record(Double(index)) }
        #expect(latency.percentile(0.999) == 1_998)
        #expect(latency.percentile(0.99) == 1_980)
        #expect(latency.summary.p50Millis == 1_000)
    }

    @Test("a sample lands in the first bucket whose bound is at least the sample")
    func buckets() {
        var latency = LatencyDistribution()
        latency.record(15)  // ≤ 15
        latency.record(15.01)  // ≤ 20
        latency.record(0)  // ≤ 0.5
        latency.record(-3)  // a clock step back counts as zero
        latency.record(1e9)  // beyond the last bound
        let bins = latency.bins
        #expect(bins.first { $0.label == "≤ 15 ms" }?.count == 1)
        #expect(bins.first { $0.label == "≤ 20 ms" }?.count == 1)
        #expect(bins.first { $0.label == "≤ 0.5 ms" }?.count == 2)
        #expect(bins.last?.label == "> 60000 ms" && bins.last?.count == 1)
        #expect(bins.map(\.count).reduce(0, +) == latency.count)
        let occupied = latency.occupiedBins
        #expect(occupied.first?.label == "≤ 0.5 ms" && occupied.last?.label == "> 60000 ms")
    }

    @Test("without every sample, percentiles come from bucket bounds capped at the maximum")
    func fromBuckets() throws {
        var latency = LatencyDistribution()
        for value in [1.0, 12, 12, 13, 90] { latency.record(value) }
        // A decoded distribution carries the buckets, not the samples.
        let decoded = try JSONDecoder().decode(LatencyDistribution.self, from: JSONEncoder().encode(latency))
        #expect(!decoded.isExact)
        #expect(decoded.percentile(0.5) == 15)  // the 3rd sample is in "≤ 15"
        #expect(decoded.percentile(1) == 90)  // "≤ 100", capped at the maximum seen
        var merged = latency
        merged.merge(decoded)
        #expect(merged.count == 10 && !merged.isExact)
        #expect(!merged.summary.exact)
    }

    @Test("merging two complete distributions stays exact")
    func mergeExact() {
        var a = LatencyDistribution()
        var b = LatencyDistribution()
        for value in [5.0, 1, 3] { a.record(value) }
        for value in [4.0, 2] { b.record(value) }
        a.merge(b)
        #expect(a.isExact && a.count == 5)
        #expect(a.percentile(0.6) == 3)
        #expect(a.minMillis == 1 && a.maxMillis == 5)
    }

    @Test("rates count events per second and average over a window")
    func rates() {
        var series = RateSeries()
        series.record(atMillis: 100)
        series.record(atMillis: 999)
        series.record(atMillis: 2_500, count: 4)
        series.record(atMillis: -5)
        #expect(series.perSecond == [3, 0, 4])
        #expect(series.total == 7)
        #expect(series.meanRate() == 7.0 / 3)
        #expect(series.meanRate(overSeconds: 1..<3) == 2)
        var other = RateSeries()
        other.record(atMillis: 3_100)
        series.merge(other)
        #expect(series.perSecond == [3, 0, 4, 1])
    }

    @Test("a tally sorts by count, then by name")
    func tally() {
        var tally = Tally()
        tally.add("RATE_LIMITED", 2)
        tally.add("client:timeout")
        tally.add("AUTH_FAILED", 2)
        #expect(tally.sorted.map(\.name) == ["AUTH_FAILED", "RATE_LIMITED", "client:timeout"])
        #expect(tally.text == "AUTH_FAILED 2, RATE_LIMITED 2, client:timeout 1")
        #expect(Tally().text == "none")
    }

    @Test("the tracker pairs an operation with each other device's first render")
    func tracker() {
        var tracker = RenderTracker()
        tracker.expect(token: "t1", kind: "append", origin: 0, others: [0, 1, 2], startMillis: 1_000)
        #expect(tracker.pending["t1"]?.awaiting == [1, 2])  // the origin is never awaited
        tracker.sighted(["t1", "unrelated"], device: 1, atMillis: 1_030)
        tracker.sighted(["t1"], device: 1, atMillis: 1_500)  // a later view of the same token
        tracker.sighted(["t1"], device: 2, atMillis: 1_080)
        #expect(tracker.pending.isEmpty)
        #expect(tracker.latency["append"]?.count == 2)
        #expect(tracker.latency["append"]?.percentile(0.5) == 30)
        #expect(tracker.latency["append"]?.maxMillis == 80)
        #expect(tracker.latency[RenderTracker.allKinds]?.count == 2)
        #expect(tracker.renders.perSecond == [0, 2])
    }

    @Test("a render seen before the expectation is registered still counts once")
    func renderBeforeExpectation() {
        var tracker = RenderTracker()
        tracker.sighted(["t2"], device: 1, atMillis: 120)
        tracker.expect(token: "t2", kind: "edit", origin: 0, others: [1, 2], startMillis: 100)
        #expect(tracker.latency["edit"]?.count == 1 && tracker.latency["edit"]?.minMillis == 20)
        #expect(tracker.pending["t2"]?.awaiting == [2])
        tracker.sighted(["t2"], device: 1, atMillis: 200)
        #expect(tracker.latency["edit"]?.count == 1)
    }

    @Test("cancelled and never-rendered operations are not samples")
    func unrendered() {
        var tracker = RenderTracker()
        tracker.expect(token: "gone", kind: "append", origin: 0, others: [1, 2], startMillis: 0)
        tracker.expect(token: "refused", kind: "rename", origin: 0, others: [1], startMillis: 0)
        tracker.cancel(token: "refused")
        tracker.sighted(["gone"], device: 1, atMillis: 10)
        #expect(tracker.unrendered.counts == ["append": 1])
        #expect(tracker.latency["rename"] == nil)
    }

    @Test("canaries are found in text up to the first character outside the token alphabet")
    func tokens() {
        #expect(RenderTokens.canary(run: "1f", number: 42) == "cloak-canary-1f-42")
        #expect(RenderTokens.canaries(in: "cloak-canary-a-1 Note cloak-canary-a-22: x") == ["cloak-canary-a-1", "cloak-canary-a-22"])
        #expect(RenderTokens.canaries(in: "Chat cloak-canary-z9-7") == ["cloak-canary-z9-7"])
        #expect(RenderTokens.canaries(in: "no canary here").isEmpty)
    }

    @Test("server error codes read as the protocol's table names them")
    func errorNames() {
        #expect(LiveErrorCode.screamingSnakeCase("rateLimited") == "RATE_LIMITED")
        #expect(LiveErrorCode.screamingSnakeCase("internal") == "INTERNAL")
        #expect(LiveErrorCode.name(of: .server(.rateLimited)) == "RATE_LIMITED")
        #expect(LiveErrorCode.name(of: .timeout) == "client:timeout")
    }
}
