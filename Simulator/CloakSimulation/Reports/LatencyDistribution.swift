import Foundation

/// Latencies in milliseconds: fixed log-spaced buckets for the histogram, count, sum, min and
/// max, and (up to ``samplesMax``) every sample, so percentiles are exact on any run the live
/// mode can produce in memory and estimated from the buckets beyond that.
///
/// ```swift
/// var latency = LatencyDistribution()
/// latency.record(12.5)
/// latency.record(40)
/// latency.percentile(0.99)      // 40.0 (nearest rank)
/// latency.bins                  // [(upperMillis: 15, count: 1), …]
/// ```
///
/// Percentiles use the nearest-rank definition: the p-th percentile of n sorted samples is the
/// ⌈p·n⌉-th, so it is always a latency that was actually observed.
public struct LatencyDistribution: Sendable, Equatable, Codable {
    /// Bucket upper bounds in milliseconds (a sample lands in the first bucket whose bound is at
    /// least the sample); one more bucket holds everything slower than the last bound.
    public static let bucketBoundsMillis: [Double] = [
        0.5, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1_000, 1_500, 2_000, 3_000,
        5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 60_000,
    ]
    /// Samples kept for exact percentiles (8 MB); beyond it percentiles come from the buckets.
    public static let samplesMax = 1_000_000

    /// Samples per bucket (one more than ``bucketBoundsMillis``).
    public private(set) var counts: [Int]
    /// Samples recorded.
    public private(set) var count = 0
    /// Their sum (for the mean).
    public private(set) var sumMillis = 0.0
    /// The fastest, or nil before any sample.
    public private(set) var minMillis: Double?
    /// The slowest, or nil before any sample.
    public private(set) var maxMillis: Double?
    /// Every sample while there are at most ``samplesMax`` (not encoded: reports carry the
    /// buckets and the percentiles instead).
    private var samples: [Double] = []
    private var sorted = true

    private enum CodingKeys: String, CodingKey { case counts, count, sumMillis, minMillis, maxMillis }

    /// An empty distribution.
    public init() {
        counts = Array(repeating: 0, count: Self.bucketBoundsMillis.count + 1)
    }

    /// Records one latency (negative values, from clock adjustments, count as zero).
    public mutating func record(_ millis: Double) {
        let value = max(0, millis)
        counts[Self.bucket(of: value)] += 1
        count += 1
        sumMillis += value
        minMillis = Swift.min(minMillis ?? value, value)
        maxMillis = Swift.max(maxMillis ?? value, value)
        if count <= Self.samplesMax {
            if let last = samples.last, value < last { sorted = false }
            samples.append(value)
        } else if !samples.isEmpty {
            samples = []  // incomplete samples would bias the percentiles: use the buckets
        }
    }

    /// Adds another distribution's samples (its exact samples only if both are still complete).
    public mutating func merge(_ other: LatencyDistribution) {
        guard other.count > 0 else { return }
        let complete = isExact && other.isExact && count + other.count <= Self.samplesMax
        for index in counts.indices { counts[index] += other.counts[index] }
        count += other.count
        sumMillis += other.sumMillis
        minMillis = [minMillis, other.minMillis].compactMap { $0 }.min()
        maxMillis = [maxMillis, other.maxMillis].compactMap { $0 }.max()
        if complete {
            samples += other.samples
            sorted = false
        } else {
            samples = []
        }
    }

    /// Whether percentiles are exact (every sample kept).
    public var isExact: Bool { samples.count == count }

    /// The mean, or nil before any sample.
    public var meanMillis: Double? { count > 0 ? sumMillis / Double(count) : nil }

    /// The nearest-rank percentile (`p` in 0…1), or nil before any sample. Exact while every
    /// sample is kept; otherwise the upper bound of the bucket holding that rank (capped at the
    /// maximum seen).
    public func percentile(_ p: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = Swift.max(1, Int((p * Double(count)).rounded(.up)))
        if isExact {
            let ordered = sorted ? samples : samples.sorted()
            return ordered[Swift.min(rank, ordered.count) - 1]
        }
        var seen = 0
        for (index, bucketCount) in counts.enumerated() {
            seen += bucketCount
            if seen >= rank {
                let bound = index < Self.bucketBoundsMillis.count ? Self.bucketBoundsMillis[index] : .infinity
                return Swift.min(bound, maxMillis ?? bound)
            }
        }
        return maxMillis
    }

    /// Sorts the kept samples once, so repeated percentile queries do not sort again.
    public mutating func prepare() {
        if !sorted {
            samples.sort()
            sorted = true
        }
    }

    /// The histogram: each bucket's label ("≤ 15 ms", "> 60000 ms") and count.
    public var bins: [(label: String, upperMillis: Double?, count: Int)] {
        counts.enumerated().map { index, bucketCount in
            if index < Self.bucketBoundsMillis.count {
                let bound = Self.bucketBoundsMillis[index]
                return ("≤ \(Self.format(bound)) ms", bound, bucketCount)
            }
            return ("> \(Self.format(Self.bucketBoundsMillis.last ?? 0)) ms", nil, bucketCount)
        }
    }

    /// The bins from the first to the last non-empty one (what a chart shows).
    public var occupiedBins: [(label: String, upperMillis: Double?, count: Int)] {
        let all = bins
        guard let first = all.firstIndex(where: { $0.count > 0 }), let last = all.lastIndex(where: { $0.count > 0 }) else {
            return []
        }
        return Array(all[first...last])
    }

    /// The percentiles a report prints.
    public var summary: LatencySummary {
        LatencySummary(
            count: count, p50Millis: percentile(0.50), p99Millis: percentile(0.99), p999Millis: percentile(0.999),
            meanMillis: meanMillis, maxMillis: maxMillis, exact: isExact)
    }

    static func bucket(of millis: Double) -> Int {
        var low = 0
        var high = bucketBoundsMillis.count
        while low < high {
            let middle = (low + high) / 2
            if bucketBoundsMillis[middle] >= millis { high = middle } else { low = middle + 1 }
        }
        return low
    }

    static func format(_ millis: Double) -> String {
        millis == millis.rounded() ? String(Int(millis)) : String(millis)
    }
}

/// The headline figures of a ``LatencyDistribution``.
public struct LatencySummary: Sendable, Equatable, Codable {
    /// Samples.
    public var count: Int
    /// Median, milliseconds.
    public var p50Millis: Double?
    /// 99th percentile.
    public var p99Millis: Double?
    /// 99.9th percentile.
    public var p999Millis: Double?
    /// Mean.
    public var meanMillis: Double?
    /// Slowest.
    public var maxMillis: Double?
    /// Whether the percentiles are exact (every sample kept) rather than bucket bounds.
    public var exact: Bool

    /// "p50 12.0 ms · p99 80.5 ms · p999 120.0 ms (n=1234)".
    public var text: String {
        guard count > 0 else { return "no samples" }
        func ms(_ value: Double?) -> String { value.map { String(format: "%.1f ms", $0) } ?? "-" }
        return "p50 \(ms(p50Millis)) · p99 \(ms(p99Millis)) · p999 \(ms(p999Millis)) · max \(ms(maxMillis)) (n=\(count)"
            + (exact ? ")" : ", from buckets)")
    }
}
