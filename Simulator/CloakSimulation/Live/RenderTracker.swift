/// Measures end-to-end latency: from an API call on one device to the moment another device of
/// the account renders its effect. Every operation of the live workload leaves a unique token
/// in what a device renders (a `cloak-canary-…` string in a message text or a title, or a
/// reaction on a message); each device reports the tokens of every view it is handed, and the
/// tracker pairs the first sighting on each other device with the call's start.
///
/// ```swift
/// var tracker = RenderTracker()
/// tracker.expect(token: "cloak-canary-7-1", kind: "append", origin: 0, others: [1, 2], startMillis: 100)
/// tracker.sighted(["cloak-canary-7-1"], device: 1, atMillis: 130)     // one 30 ms sample
/// tracker.latency["append"]?.count                                   // 1
/// ```
///
/// Pure bookkeeping (times are passed in), so it is tested without a network. A sighting may
/// come before the expectation is registered (the call returned, the tracker was not told yet):
/// first sightings are remembered per device, so the order does not matter.
public struct RenderTracker: Sendable {
    /// An operation some devices have not rendered yet.
    public struct Expectation: Sendable, Equatable {
        /// The operation's kind ("append", "edit", …).
        public let kind: String
        /// The device that made the call.
        public let origin: Int
        /// When the call started (ms since the run started).
        public let startMillis: Double
        /// Devices that have not rendered it yet.
        public var awaiting: Set<Int>
    }

    /// Latency by operation kind, and every kind under ``allKinds``.
    public private(set) var latency: [String: LatencyDistribution] = [:]
    /// Renders (one device showing one operation's effect) per second of the run.
    public private(set) var renders = RateSeries()
    /// Operations some device has not rendered yet, by token.
    public private(set) var pending: [String: Expectation] = [:]
    /// When each device first showed each token.
    private var firstSeen: [Int: [String: Double]] = [:]

    /// The key of the distribution over every kind.
    public static let allKinds = "all"

    /// An empty tracker.
    public init() {}

    /// Registers an operation that `others` must render; a device that already showed `token`
    /// yields its sample at once.
    public mutating func expect(token: String, kind: String, origin: Int, others: [Int], startMillis: Double) {
        var awaiting: Set<Int> = []
        for device in others where device != origin {
            if let seen = firstSeen[device]?[token] {
                sample(kind, seen - startMillis, at: seen)
            } else {
                awaiting.insert(device)
            }
        }
        guard !awaiting.isEmpty else { return }
        pending[token] = Expectation(kind: kind, origin: origin, startMillis: startMillis, awaiting: awaiting)
    }

    /// Forgets an expectation (its call failed, so nothing will render).
    public mutating func cancel(token: String) {
        pending[token] = nil
    }

    /// `device` shows every token in `tokens` at `atMillis`.
    public mutating func sighted<S: Sequence>(_ tokens: S, device: Int, atMillis: Double) where S.Element == String {
        for token in tokens {
            guard firstSeen[device]?[token] == nil else { continue }
            firstSeen[device, default: [:]][token] = atMillis
            guard var expectation = pending[token], expectation.awaiting.remove(device) != nil else { continue }
            sample(expectation.kind, atMillis - expectation.startMillis, at: atMillis)
            pending[token] = expectation.awaiting.isEmpty ? nil : expectation
        }
    }

    /// Operations never rendered on some device, by kind (a message branched away, deleted or
    /// renamed over before that device showed it; the durability check decides whether any of
    /// them was lost).
    public var unrendered: Tally {
        var tally = Tally()
        for expectation in pending.values { tally.add(expectation.kind, expectation.awaiting.count) }
        return tally
    }

    /// Sorts every distribution's samples (call once before reading many percentiles).
    public mutating func prepare() {
        for key in latency.keys { latency[key]?.prepare() }
    }

    private mutating func sample(_ kind: String, _ millis: Double, at time: Double) {
        latency[kind, default: LatencyDistribution()].record(millis)
        latency[Self.allKinds, default: LatencyDistribution()].record(millis)
        renders.record(atMillis: time)
    }
}
