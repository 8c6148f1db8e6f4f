/// A sorted map from the first counter of each text run of one writer to the leaf that holds
/// the run, with predecessor lookup ("which run contains counter c?").
///
/// It is a two-level sorted list (sorted chunks of at most `chunkCapacity` keys, located by
/// binary search over their first keys), the shape of Python's sortedcontainers: inserts in
/// the middle cost O(√n)-ish shifting of small arrays instead of O(n), and the overwhelmingly
/// common case, keys arriving in increasing order, appends to the last chunk. Positions are
/// looked up in the leaf itself, so a leaf split only rewrites the values of the moved runs.
struct RunIndex: Sendable {
    private static let chunkCapacity = 256

    private var keys: [[UInt64]] = []
    private var values: [[Int32]] = []
    private var firstKeys: [UInt64] = []

    var isEmpty: Bool { keys.isEmpty }

    /// The chunk whose first key is the greatest ≤ `key` (0 when `key` precedes all).
    private func chunk(for key: UInt64) -> Int {
        if let last = firstKeys.last, last <= key { return firstKeys.count - 1 }
        var low = 0
        var high = firstKeys.count
        while low < high {
            let mid = (low + high) / 2
            if firstKeys[mid] <= key { low = mid + 1 } else { high = mid }
        }
        return max(0, low - 1)
    }

    /// Index of the greatest key ≤ `key` within chunk `c`, or -1. Indexes `keys[c]` in place:
    /// binding it to a local would cost a retain and release per lookup.
    private func slot(atMost key: UInt64, in c: Int) -> Int {
        let count = keys[c].count
        if count > 0, keys[c][count - 1] <= key { return count - 1 }
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) / 2
            if keys[c][mid] <= key { low = mid + 1 } else { high = mid }
        }
        return low - 1
    }

    /// The value stored under the greatest key ≤ `key`.
    func value(atMost key: UInt64) -> (key: UInt64, value: Int32)? {
        guard !keys.isEmpty else { return nil }
        let c = chunk(for: key)
        let s = slot(atMost: key, in: c)
        guard s >= 0 else { return nil }
        return (keys[c][s], values[c][s])
    }

    /// The smallest key greater than `key`.
    func successor(of key: UInt64) -> UInt64? {
        guard !keys.isEmpty else { return nil }
        let c = chunk(for: key)
        let s = slot(atMost: key, in: c) + 1
        if s < keys[c].count { return keys[c][s] }
        return c + 1 < keys.count ? keys[c + 1].first : nil
    }

    /// Inserts or overwrites.
    mutating func set(_ key: UInt64, _ value: Int32) {
        _ = insert(key, value, overwrite: true)
    }

    /// Inserts `key`; when it is present, overwrites only if `overwrite`. Returns whether the
    /// key was absent.
    mutating func insert(_ key: UInt64, _ value: Int32, overwrite: Bool) -> Bool {
        guard !keys.isEmpty else {
            keys = [[key]]
            values = [[value]]
            firstKeys = [key]
            return true
        }
        let c = chunk(for: key)
        let s = slot(atMost: key, in: c)
        if s >= 0 && keys[c][s] == key {
            if overwrite { values[c][s] = value }
            return false
        }
        if s + 1 == keys[c].count {
            keys[c].append(key)
            values[c].append(value)
        } else {
            keys[c].insert(key, at: s + 1)
            values[c].insert(value, at: s + 1)
        }
        if s < 0 { firstKeys[c] = key }
        if keys[c].count > Self.chunkCapacity { splitChunk(c) }
        return true
    }

    /// Sets `lower` to `value` and gives every key in `lower ..< upper` the same value (a
    /// run moving to another leaf takes the keys that lie inside it along).
    mutating func assign(_ value: Int32, from lower: UInt64, below upper: UInt64) {
        set(lower, value)
        var c = chunk(for: lower)
        var s = slot(atMost: lower, in: c) + 1
        while c < keys.count {
            while s < keys[c].count {
                guard keys[c][s] < upper else { return }
                values[c][s] = value
                s += 1
            }
            c += 1
            s = 0
        }
    }

    mutating func remove(_ key: UInt64) {
        guard !keys.isEmpty else { return }
        let c = chunk(for: key)
        let s = slot(atMost: key, in: c)
        guard s >= 0, keys[c][s] == key else { return }
        keys[c].remove(at: s)
        values[c].remove(at: s)
        if keys[c].isEmpty {
            keys.remove(at: c)
            values.remove(at: c)
            firstKeys.remove(at: c)
        } else {
            firstKeys[c] = keys[c][0]
        }
    }

    private mutating func splitChunk(_ c: Int) {
        let half = keys[c].count / 2
        let rightKeys = Array(keys[c][half...])
        let rightValues = Array(values[c][half...])
        keys[c].removeSubrange(half...)
        values[c].removeSubrange(half...)
        keys.insert(rightKeys, at: c + 1)
        values.insert(rightValues, at: c + 1)
        firstKeys.insert(rightKeys[0], at: c + 1)
    }

    /// Builds from keys in increasing order (snapshot load, first leaf split).
    init(sorted pairs: [(UInt64, Int32)]) {
        var start = 0
        let step = Self.chunkCapacity / 2
        while start < pairs.count {
            let slice = pairs[start..<min(pairs.count, start + step)]
            keys.append(slice.map(\.0))
            values.append(slice.map(\.1))
            firstKeys.append(slice.first?.0 ?? 0)
            start += step
        }
    }

    init() {}
}
