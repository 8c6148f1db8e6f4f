public import CloakProtocol
public import Metrics

/// The server's swift-metrics instruments. The HTTP adapter hands in a Prometheus factory and
/// serves it on `/metrics`; tests and the simulator pass a factory of their choice, so nothing
/// depends on the global `MetricsSystem` bootstrap.
///
/// ```swift
/// let metrics = ServerMetrics(factory: PrometheusMetricsFactory(registry: registry))
/// metrics.framesIn.increment()
/// ```
public struct ServerMetrics: Sendable {
    /// Open connections.
    public let connections: Meter
    /// Frames received.
    public let framesIn: Counter
    /// Frames sent.
    public let framesOut: Counter
    /// Push requests received.
    public let pushes: Counter
    /// Change sets committed (not counting duplicates).
    public let changeSetsAccepted: Counter
    /// Push acknowledgements sent.
    public let acks: Counter
    /// Change sets delivered to subscribers (catch-up and live).
    public let deliveries: Counter
    /// Group-commit latency.
    public let commitLatency: Timer
    /// Rows per group commit.
    public let commitRows: Recorder
    /// From the end of a commit until a live delivery is handed to the socket: one observation
    /// per event-loop flush round (a fanout's round writes to hundreds of sockets), its slowest
    /// delivery.
    public let fanoutLatency: Timer
    /// Accounts a group commit left unwritten because another server process changed them
    /// first (shared store; their clients retry).
    public let versionConflicts: Counter
    /// Notifications of other server processes' commits taken in (shared store).
    public let remoteCommits: Counter
    private let factory: any MetricsFactory

    /// Creates the instruments with `factory`.
    public init(factory: any MetricsFactory) {
        self.factory = factory
        connections = Meter(label: "cloak_connections", factory: factory)
        framesIn = Counter(label: "cloak_frames_in_total", factory: factory)
        framesOut = Counter(label: "cloak_frames_out_total", factory: factory)
        pushes = Counter(label: "cloak_pushes_total", factory: factory)
        changeSetsAccepted = Counter(label: "cloak_change_sets_accepted_total", factory: factory)
        acks = Counter(label: "cloak_acks_total", factory: factory)
        deliveries = Counter(label: "cloak_deliveries_total", factory: factory)
        commitLatency = Timer(label: "cloak_commit_latency_seconds", factory: factory)
        commitRows = Recorder(label: "cloak_commit_rows", factory: factory)
        fanoutLatency = Timer(label: "cloak_fanout_latency_seconds", factory: factory)
        versionConflicts = Counter(label: "cloak_version_conflicts_total", factory: factory)
        remoteCommits = Counter(label: "cloak_remote_commits_total", factory: factory)
        // Every code's series exists from the start at 0, so a rate or an alert over one code
        // works before its first occurrence.
        for code in Cloak_V1_ErrorCode.allCases where code != .unspecified {
            _ = Counter(label: "cloak_errors_total", dimensions: [("code", ProtocolError.metricName(of: code))], factory: factory)
        }
    }

    /// Instruments that record nothing (tests, the simulator).
    public static var disabled: ServerMetrics { ServerMetrics(factory: NOOPMetricsHandler.instance) }

    /// Counts an error sent to a client, by its wire code.
    public func error(_ error: ProtocolError) {
        Counter(label: "cloak_errors_total", dimensions: [("code", error.metricName)], factory: factory).increment()
    }
}

extension ProtocolError {
    /// The code's name for metrics dimensions and logs, in snake_case (`slow_consumer`).
    public var metricName: String { Self.metricName(of: wireCode) }

    /// A wire code's snake_case name (`cursor_mismatch`).
    public static func metricName(of code: Cloak_V1_ErrorCode) -> String {
        switch code {
        case .unspecified, .UNRECOGNIZED: return "unspecified"
        default:
            return "\(code)".reduce(into: "") { out, c in out += c.isUppercase ? "_" + c.lowercased() : String(c) }
        }
    }
}

extension Timer {
    /// Records a `Duration`.
    package func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
