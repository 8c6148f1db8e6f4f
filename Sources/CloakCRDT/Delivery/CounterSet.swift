/// The counters of one writer that a document has applied, as sorted, disjoint, non-adjacent
/// half-open intervals. In-order delivery keeps it at one interval per writer; gaps appear
/// only where the writer spent counters in other documents or ops are still missing.
struct CounterSet: Hashable, Sendable {
    private(set) var starts: [UInt64] = []
    private(set) var ends: [UInt64] = []

    enum Coverage {
        case none
        case partial
        case full
    }

    var intervalCount: Int { starts.count }
    /// One past the highest applied counter (0 when empty).
    var upperBound: UInt64 { ends.last ?? 0 }

    /// Index of the last interval whose start is ≤ `counter`, or -1.
    private func lastStart(atMost counter: UInt64) -> Int {
        if let last = starts.last, last <= counter { return starts.count - 1 }
        var low = 0
        var high = starts.count
        while low < high {
            let mid = (low + high) / 2
            if starts[mid] <= counter { low = mid + 1 } else { high = mid }
        }
        return low - 1
    }

    func contains(_ counter: UInt64) -> Bool {
        let index = lastStart(atMost: counter)
        return index >= 0 && counter < ends[index]
    }

    func coverage(start: UInt64, count: UInt64) -> Coverage {
        let end = start &+ count
        let index = lastStart(atMost: start)
        if index >= 0 && ends[index] >= end { return .full }
        if index >= 0 && ends[index] > start { return .partial }
        let next = index + 1
        if next < starts.count && starts[next] < end { return .partial }
        return .none
    }

    /// The first counter of `start ..< start + count` not in the set, if any.
    func firstMissing(start: UInt64, count: UInt64) -> UInt64? {
        let index = lastStart(atMost: start)
        if index >= 0 && ends[index] > start {
            return ends[index] >= start &+ count ? nil : ends[index]
        }
        return start
    }

    /// The sub-ranges of `start ..< start + count` not in the set, in order.
    func gaps(start: UInt64, count: UInt64) -> [(start: UInt64, count: UInt64)] {
        var result: [(start: UInt64, count: UInt64)] = []
        var cursor = start
        let end = start &+ count
        var index = max(0, lastStart(atMost: start))
        while cursor < end {
            if index < starts.count && starts[index] <= cursor {
                cursor = max(cursor, ends[index])
                index += 1
                continue
            }
            let gapEnd = index < starts.count ? min(end, starts[index]) : end
            if gapEnd > cursor { result.append((cursor, gapEnd - cursor)) }
            cursor = gapEnd
        }
        return result
    }

    mutating func insert(start: UInt64, count: UInt64) {
        guard count > 0 else { return }
        let end = start &+ count
        if let lastEnd = ends.last, start >= lastEnd {
            if start == lastEnd {
                ends[ends.count - 1] = end
            } else {
                starts.append(start)
                ends.append(end)
            }
            return
        }
        if starts.isEmpty {
            starts.append(start)
            ends.append(end)
            return
        }
        insertSlow(start: start, end: end)
    }

    private mutating func insertSlow(start: UInt64, end: UInt64) {
        // First interval that could touch [start, end): the last with start ≤ start, if it
        // reaches start; otherwise the next one.
        var first = lastStart(atMost: start)
        if first < 0 || ends[first] < start { first += 1 }
        var last = first
        var newStart = start
        var newEnd = end
        while last < starts.count && starts[last] <= end {
            newStart = min(newStart, starts[last])
            newEnd = max(newEnd, ends[last])
            last += 1
        }
        starts.replaceSubrange(first..<last, with: [newStart])
        ends.replaceSubrange(first..<last, with: [newEnd])
    }

    /// Removes `start ..< start + count` (the span of an operation leaving the pending
    /// buffer): intervals it covers go, intervals it cuts are trimmed or split, in place (a
    /// release must not allocate).
    mutating func remove(start: UInt64, count: UInt64) {
        guard count > 0, !starts.isEmpty else { return }
        let end = start &+ count
        var first = lastStart(atMost: start)
        if first < 0 || ends[first] <= start { first += 1 }
        var last = first
        while last < starts.count && starts[last] < end { last += 1 }
        guard first < last else { return }
        let keepsLeft = starts[first] < start
        let keepsRight = ends[last - 1] > end
        if keepsLeft && keepsRight && last - first == 1 {
            let rightEnd = ends[first]
            ends[first] = start
            starts.insert(end, at: first + 1)
            ends.insert(rightEnd, at: first + 1)
            return
        }
        var removeFrom = first
        if keepsLeft {
            ends[first] = start
            removeFrom += 1
        }
        if keepsRight {
            starts[last - 1] = end
            last -= 1
        }
        starts.removeSubrange(removeFrom..<last)
        ends.removeSubrange(removeFrom..<last)
    }

    /// Rebuilds from already-validated sorted intervals (snapshot load).
    init(starts: [UInt64], ends: [UInt64]) {
        self.starts = starts
        self.ends = ends
    }

    init() {}
}
