import Foundation
import Synchronization

/// Many seeds, run on several worker threads (each run is single-threaded and deterministic;
/// runs share nothing, so spreading them over cores changes no result).
///
/// ```swift
/// let summary = await SimBatch(first: 1, count: 200, template: SimOptions(seed: 1, faults: .all), jobs: 2)
///     .run { print($0.line) } report: { if !$0.passed { print($0.summary) } }
/// ```
public struct SimBatch: Sendable {
    /// Where a batch is.
    public struct Progress: Sendable {
        /// Seeds finished.
        public let done: Int
        /// Seeds in the batch.
        public let total: Int
        /// Seeds that failed a check.
        public let failed: Int
        /// Seeds per second of wall time so far.
        public let seedsPerSecond: Double

        /// "12/200 seeds, 0 failed, 3.1 seeds/s, ETA 61 s".
        public var line: String {
            let eta = seedsPerSecond > 0 ? Double(total - done) / seedsPerSecond : 0
            return "\(done)/\(total) seeds, \(failed) failed, "
                + String(format: "%.2f seeds/s, ETA %.0f s", seedsPerSecond, eta)
        }
    }

    /// The batch's outcome.
    public struct Summary: Sendable {
        /// Seeds run.
        public let seeds: Int
        /// Seeds that failed.
        public let failed: Int
        /// The failing seeds.
        public let failingSeeds: [UInt64]
        /// Wall seconds.
        public let seconds: Double
        /// Every run's result, in seed order.
        public let results: [SimResult]

        /// The last lines of a batch.
        public var text: String {
            let rate = seconds > 0 ? Double(seeds) / seconds : 0
            var line = "\(seeds) seeds, \(failed) failed, " + String(format: "%.1f s, %.2f seeds/s", seconds, rate)
            if !failingSeeds.isEmpty { line += "\nfailing seeds: \(failingSeeds.map(String.init).joined(separator: " "))" }
            return line
        }
    }

    let first: UInt64
    let count: Int
    let template: SimOptions
    let jobs: Int

    /// A batch of `count` seeds from `first`, each with `template`'s other options.
    public init(first: UInt64, count: Int, template: SimOptions, jobs: Int) {
        self.first = first
        self.count = count
        self.template = template
        self.jobs = max(1, jobs)
    }

    /// Runs the batch; `progress` is called after each seed, `report` with each result.
    public func run(
        progress: @escaping @Sendable (Progress) -> Void, report: @escaping @Sendable (SimResult) -> Void
    ) async -> Summary {
        let started = Date()  // tidy:allow wall time of a batch, for seeds/s (never inside a run)
        let state = BatchState()
        let template = self.template
        let first = self.first
        let count = self.count
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<min(jobs, count) {
                group.addTask {
                    while true {
                        let index = state.value.withLock { s -> Int? in
                            guard s.next < count else { return nil }
                            defer { s.next += 1 }
                            return s.next
                        }
                        guard let index else { return }
                        var options = template
                        options.seed = first &+ UInt64(index)
                        let result = SimWorld(options: options).run()
                        report(result)
                        let snapshot = state.value.withLock { s in
                            s.done += 1
                            if !result.passed { s.failed += 1 }
                            s.results.append(result)
                            return (s.done, s.failed)
                        }
                        let elapsed = Date().timeIntervalSince(started)  // tidy:allow progress rate
                        progress(Progress(
                            done: snapshot.0, total: count, failed: snapshot.1,
                            seedsPerSecond: elapsed > 0 ? Double(snapshot.0) / elapsed : 0))
                    }
                }
            }
        }
        let results = state.value.withLock { $0.results }.sorted { $0.options.seed < $1.options.seed }
        return Summary(
            seeds: count, failed: results.filter { !$0.passed }.count,
            failingSeeds: results.filter { !$0.passed }.map(\.options.seed),
            seconds: Date().timeIntervalSince(started), results: results)  // tidy:allow batch wall time
    }
}

/// The batch's shared counters (the workers' only shared state).
private final class BatchState: Sendable {
    let value = Mutex((next: 0, done: 0, failed: 0, results: [SimResult]()))
}

/// Swift seeds its hash functions per process, so `Set` and `Dictionary` orders differ between
/// two runs of one program. The simulator's results never depend on those orders by design; to
/// make any slip visible as a trace difference rather than noise, `cloak-sim` runs with
/// deterministic hashing (it re-executes itself with `SWIFT_DETERMINISTIC_HASHING=1`).
public enum DeterministicHashing {
    /// Re-executes the process with deterministic hashing unless it already has it.
    public static func ensure() {
        guard ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil else { return }
        setenv("SWIFT_DETERMINISTIC_HASHING", "1", 1)
        let arguments = CommandLine.arguments
        var cArguments = arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &cArguments)
        // execv returns only on failure: carry on with per-process hashing.
    }
}
