import CloakSimulation
import Testing

/// The deterministic simulator as a test: seeded runs of real client engines against the real
/// server core under every fault profile, checked for convergence, durability,
/// confidentiality, integrity under a hostile server (ADV-02, ADV-06, ADV-10, ADV-12, ADV-44,
/// ADV-45), revocation and nonce uniqueness.
@Suite("Deterministic simulation")
struct DeterministicSimulationTests {
    /// One seed is one run, event for event: the trace hash is the witness.
    @Test func sameSeedGivesTheSameTraceAndAnotherSeedAnother() {
        let options = SimOptions(seed: 4242, accounts: 2, devices: 2, ops: 60, faults: .all)
        let first = SimWorld(options: options).run()
        let again = SimWorld(options: options).run()
        var other = options
        other.seed = 4243
        let different = SimWorld(options: other).run()
        #expect(first.passed, "\(first.summary)")
        #expect(first.traceHash == again.traceHash)
        #expect(first.stats == again.stats)
        #expect(first.traceHash != different.traceHash)
    }

    /// The livelock budget is the same up to the default size and grows with the run beyond
    /// it: a fixed 100,000 failed a 10 × 5 × 1,000 run as livelocked while it was still healing.
    @Test func eventBudgetGrowsWithTheRun() {
        #expect(SimOptions(seed: 1).maxEvents == 100_000)
        #expect(SimOptions(seed: 1, ops: 120).maxEvents == 100_000)
        #expect(SimOptions(seed: 1, accounts: 10, devices: 5, ops: 1_000).maxEvents == 2_800_000)
        #expect(SimOptions(seed: 1, accounts: 10, devices: 5, ops: 1_000, maxEvents: 7).maxEvents == 7)
    }

    /// Seeds that found bugs in other modules; each must keep passing.
    /// - restore 1, 2: a restore push bypassed the stale-log rule; snapshots covered unacked
    ///   change sets (fork); a removed device believed a refusal of a restored server.
    /// - restore 11: a device the restore forked (documented limit: alarm, exempted); all
    ///   10197 (CI batch): the same limit seen by a device the restored log no longer lists.
    /// - all 102: a past push-retry time woke the driver at once while healing blocked pushes.
    /// - all 917: a push the restored server refused as stale, after the server had stored and
    ///   fanned it out before the restore, was re-sealed into a fork of the author's chain.
    /// - all 13, 872: an assistant whose acknowledged change sets a restored server lost
    ///   retried its refused (GAP) push for ever; stale ticks piled up in the simulator.
    /// - hostile 1: a shortened device log left an incident nobody looked at again.
    /// - hostile 6, 7: a withheld last change set of a chain, and an already-open incident.
    /// - hostile 8: a damaged delivery cost the change set (no re-fetch after a rejection).
    @Test(arguments: [
        (UInt64(1), FaultProfile.restore), (2, .restore), (11, .restore), (102, .all), (917, .all), (13, .all), (872, .all),
        (1, .hostile), (6, .hostile), (7, .hostile), (8, .hostile),
    ])
    func regressionSeed(seed: UInt64, faults: FaultProfile) {
        let result = SimWorld(options: SimOptions(seed: seed, faults: faults)).run()
        #expect(result.passed, "\(result.summary)")
    }

    /// Seeds with assistants (issue 24's 1,000-seed run) that must keep passing:
    /// - all 35, 927: a member's reply to an assistant's message that its revocation (35) or
    ///   restriction (927) cut off, after a restore, is lost on every device alike (§10).
    /// - all 222: an assistant's change sets a restored server lost, sealed before a removal,
    ///   were pushed again for ever and refused STALE_DEVICE_LOG (now a restore push, §29).
    /// - all 212, 648: an own change set the server may have stored was re-sealed into a fork
    ///   of the author's chain: after a crash between its push and the answer (212), or for an
    ///   earlier stale refusal while it went back as a restore (648).
    /// - all 348: a device joined from a snapshot covering a revoked assistant's change sets
    ///   past the cut-off a restored server later allowed; it kept them and differed silently
    ///   (it now starts the conversation over, §10).
    /// - all 5368: a device the restored server forgot gave back the entries adding it before
    ///   signing in, saw no rollback once signed in, and never re-sealed its keys: another member
    ///   lacked epochs 2 and 3 for good.
    @Test(arguments: [UInt64(35), 927, 222, 212, 648, 348, 5368])
    func assistantCutoffRegressionSeed(seed: UInt64) {
        let result = SimWorld(options: SimOptions(seed: seed, faults: .all, assistants: true)).run()
        #expect(result.passed, "\(result.summary)")
    }

    /// Every hostile policy fires across a few seeds, and each raised its alarm (a run fails
    /// its integrity check when a device stays silent).
    @Test func hostileServerIsDetectedEveryWay() async {
        let summary = await SimBatch(first: 500, count: 6, template: SimOptions(seed: 0, faults: .hostile), jobs: 2)
            .run(progress: { _ in }, report: { _ in })
        #expect(summary.failed == 0, "\(summary.results.filter { !$0.passed }.map(\.summary))")
        var detected: [String: Int] = [:]
        for result in summary.results {
            for (key, value) in result.stats where key.hasPrefix("detected ") { detected[key, default: 0] += value }
        }
        for policy in ["tamper", "truncate", "forge", "rollback", "log rollback", "inject device", "withhold"] {
            #expect(detected["detected \(policy)", default: 0] > 0, "no \(policy) detected in \(detected)")
        }
    }

    /// Seeds of the CI batch that still fail: open bugs, each named in issue 24's note, kept
    /// visible as known issues rather than hidden by another seed range. A new failing seed
    /// fails the test; a seed here that passes is reported too (take it out).
    static let openSeeds: [UInt64: String] = [:]

    /// The batch CI runs: 200 seeds with every fault profile mixed in and AI assistants joining,
    /// answering, expiring and being revoked (what `cloak-sim run --faults all` does).
    @Test func twoHundredSeedsWithAllFaults() async {
        let template = SimOptions(seed: 0, accounts: 3, devices: 3, ops: 120, faults: .all, assistants: true)
        let summary = await SimBatch(first: 10_000, count: 200, template: template, jobs: 2)
            .run(progress: { _ in }, report: { _ in })
        #expect(summary.seeds == 200)
        for result in summary.results where !result.passed {
            if let why = Self.openSeeds[result.options.seed] {
                withKnownIssue(Comment(rawValue: why)) { Issue.record(Comment(rawValue: result.summary)) }
            } else {
                Issue.record(Comment(rawValue: "a new failing seed: \(result.summary)"))
            }
        }
        #expect(summary.failed <= Self.openSeeds.count)
        let failed = Set(summary.results.filter { !$0.passed }.map(\.options.seed))
        for seed in Self.openSeeds.keys.sorted() where !failed.contains(seed) {
            Issue.record("open seed \(seed) passes now: take it out of openSeeds")
        }
    }
}
