import Metrics
import Foundation
import Prometheus
import Synchronization

/// This build's version, for `cloak-server --version` and the `cloak_build_info` metric.
public enum ServerBuild {
    /// The server's version (bumped with each release).
    public static let version = "0.2.0"
    /// The wire protocol versions it speaks.
    public static let protocolVersions = "1"
}

/// A swift-metrics factory onto a Prometheus registry that gives every family its `# HELP`
/// line (swift-prometheus's own factory registers them without one).
struct DescribedMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry
    let durationBuckets: [String: [Duration]]

    /// One line per family: what it counts, in the terms docs/operations.md uses.
    static let help: [String: String] = [
        "cloak_connections": "Open WebSocket connections.",
        "cloak_frames_in_total": "Frames received from clients.",
        "cloak_frames_out_total": "Frames sent to clients.",
        "cloak_pushes_total": "Push requests received.",
        "cloak_change_sets_accepted_total": "Change sets committed (duplicates not counted).",
        "cloak_acks_total": "Push acknowledgements sent.",
        "cloak_deliveries_total": "Change sets delivered to subscribers (catch-up and live).",
        "cloak_commit_latency_seconds": "Duration of a group commit (one durable transaction).",
        "cloak_commit_rows": "Rows written per group commit.",
        "cloak_fanout_latency_seconds": "From the end of a commit until a live delivery is handed to the socket.",
        "cloak_version_conflicts_total": "Accounts a commit left unwritten because another server process changed them first.",
        "cloak_remote_commits_total": "Other server processes' commit announcements taken in (shared PostgreSQL).",
        "cloak_errors_total": "Error codes sent to clients, by code (PROTOCOL.md §23).",
    ]

    /// Rows per group commit: powers of two up to the largest pushes.
    static let rowBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]

    private func help(_ label: String) -> MetricNameDescriptor { described(label, Self.help[label] ?? "") }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: help(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: help(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: help(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: help(label), labels: dimensions, buckets: Self.rowBuckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: help(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = durationBuckets[label] ?? [.milliseconds(5), .milliseconds(50), .milliseconds(500), .seconds(5)]
        return registry.makeDurationHistogram(descriptor: help(label), labels: dimensions, buckets: buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? Histogram<Double> { registry.unregisterValueHistogram(histogram) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? Histogram<Duration> { registry.unregisterDurationHistogram(histogram) }
    }
}

/// The gauges the server sets itself: store figures (refreshed now and then), the process's
/// own `process_*` figures (read from /proc at each scrape) and the build.
final class ServerGauges: Sendable {
    let accounts: Prometheus.Gauge
    let storedBytes: Prometheus.Gauge
    let databaseBytes: Prometheus.Gauge
    let storeUp: Prometheus.Gauge
    let compactions: Prometheus.Counter
    private let cpu: Prometheus.Counter
    private let residentMemory: Prometheus.Gauge
    private let virtualMemory: Prometheus.Gauge
    private let openFileDescriptors: Prometheus.Gauge
    private let maxFileDescriptors: Prometheus.Gauge
    private let startTime: Prometheus.Gauge
    private let cpuSeconds = Mutex(0.0)

    init(registry: PrometheusCollectorRegistry) {
        accounts = registry.makeGauge(descriptor: described("cloak_accounts", "Accounts in the store."))
        storedBytes = registry.makeGauge(descriptor: described("cloak_stored_bytes", "Bytes all accounts store (what quotas count)."))
        databaseBytes = registry.makeGauge(
            descriptor: described(
                "cloak_database_bytes", "The database's size on disk (SQLite pages, or PostgreSQL's database size)."))
        storeUp = registry.makeGauge(descriptor: described("cloak_store_up", "1 while the database answers, 0 while it does not."))
        compactions = registry.makeCounter(descriptor: described("cloak_compactions_total", "Scheduled compaction runs finished."))
        cpu = registry.makeCounter(descriptor: described("process_cpu_seconds_total", "User and system CPU time spent, in seconds."))
        residentMemory = registry.makeGauge(descriptor: described("process_resident_memory_bytes", "Resident memory size in bytes."))
        virtualMemory = registry.makeGauge(descriptor: described("process_virtual_memory_bytes", "Virtual memory size in bytes."))
        openFileDescriptors = registry.makeGauge(descriptor: described("process_open_fds", "Open file descriptors."))
        maxFileDescriptors = registry.makeGauge(descriptor: described("process_max_fds", "The limit of open file descriptors."))
        startTime = registry.makeGauge(descriptor: described("process_start_time_seconds", "Start time since the Unix epoch, in seconds."))
        let build = registry.makeGauge(
            descriptor: described("cloak_build_info", "The server's build: always 1, with its version as labels."),
            labels: [("version", ServerBuild.version), ("protocol", ServerBuild.protocolVersions)])
        build.set(Int64(1))
        storeUp.set(Int64(1))
        readProcess()
    }

    /// Reads the process's figures from /proc (Linux; elsewhere they stay at their last value).
    func readProcess() {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return }
        // Fields after the command name (which may hold spaces), counted from field 3.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        func field(_ number: Int) -> Double { number - 3 < fields.count ? Double(fields[number - 3]) ?? 0 : 0 }
        let seconds = (field(14) + field(15)) / ticks
        let delta = cpuSeconds.withLock { last in
            defer { last = max(last, seconds) }
            return seconds - last
        }
        if delta > 0 { cpu.increment(by: delta) }
        virtualMemory.set(field(23))
        residentMemory.set(field(24) * page)
        if let boot = Self.bootTime() { startTime.set(boot + field(22) / ticks) }
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        openFileDescriptors.set(Int64(descriptors))
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFileDescriptors.set(Double(limit.rlim_cur)) }
    }

    private static func bootTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        return stat.split(separator: "\n").first { $0.hasPrefix("btime ") }.flatMap { Double($0.dropFirst(6)) }
    }
}

/// A family's name and help text (swift-prometheus composes the name from parts; the whole name
/// goes in one).
private func described(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}
