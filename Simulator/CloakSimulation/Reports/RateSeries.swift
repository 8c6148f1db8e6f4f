/// Counts per whole second since a run started: operations accepted, views rendered. The
/// throughput-over-time figure of a report.
///
/// ```swift
/// var accepted = RateSeries()
/// accepted.record(atMillis: 1_250)      // second 1
/// accepted.record(atMillis: 1_900)
/// accepted.perSecond                    // [0, 2]
/// ```
public struct RateSeries: Sendable, Equatable, Codable {
    /// Events in each second (index 0 is the first second).
    public private(set) var perSecond: [Int] = []

    /// Seconds kept at most: a day, so a forgotten run cannot grow without bound.
    public static let secondsMax = 86_400

    /// An empty series.
    public init() {}

    /// Counts `count` events at `millis` after the start (negative times count in second 0).
    public mutating func record(atMillis millis: Double, count: Int = 1) {
        let second = Swift.min(Self.secondsMax - 1, Swift.max(0, Int(millis / 1_000)))
        if perSecond.count <= second { perSecond += Array(repeating: 0, count: second + 1 - perSecond.count) }
        perSecond[second] += count
    }

    /// Adds another series second by second.
    public mutating func merge(_ other: RateSeries) {
        if perSecond.count < other.perSecond.count {
            perSecond += Array(repeating: 0, count: other.perSecond.count - perSecond.count)
        }
        for (second, count) in other.perSecond.enumerated() { perSecond[second] += count }
    }

    /// Every event.
    public var total: Int { perSecond.reduce(0, +) }

    /// Events per second over the seconds `range` covers (the whole series when nil).
    public func meanRate(overSeconds range: Range<Int>? = nil) -> Double {
        let window = range ?? 0..<perSecond.count
        guard !window.isEmpty else { return 0 }
        let clamped = window.clamped(to: 0..<Swift.max(perSecond.count, window.upperBound))
        let sum = clamped.reduce(0) { $0 + ($1 < perSecond.count ? perSecond[$1] : 0) }
        return Double(sum) / Double(clamped.count)
    }
}

/// Counts by name (errors by code, alarms by kind, operations by kind), printed sorted.
public struct Tally: Sendable, Equatable, Codable {
    /// The counts.
    public private(set) var counts: [String: Int] = [:]

    /// An empty tally.
    public init() {}

    /// Adds `count` to `name`.
    public mutating func add(_ name: String, _ count: Int = 1) { counts[name, default: 0] += count }

    /// Adds every count of `other`.
    public mutating func merge(_ other: Tally) {
        for (name, count) in other.counts { add(name, count) }
    }

    /// The sum of every count.
    public var total: Int { counts.values.reduce(0, +) }

    /// Names by descending count, then by name.
    public var sorted: [(name: String, count: Int)] {
        counts.map { ($0.key, $0.value) }.sorted { ($1.1, $0.0) < ($0.1, $1.0) }
    }

    /// "RATE_LIMITED 3, timeout 1", or "none".
    public var text: String {
        counts.isEmpty ? "none" : sorted.map { "\($0.name) \($0.count)" }.joined(separator: ", ")
    }
}
