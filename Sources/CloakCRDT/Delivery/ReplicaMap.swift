/// A map keyed by `ReplicaID` tuned for the handful of devices an account has: up to
/// `linearMax` keys it scans two parallel arrays (two word compares per key, no hashing),
/// and only beyond that it adds a dictionary index. Per-operation lookups of the writer's
/// applied counters and replica index are on every apply path, so this matters.
struct ReplicaMap<Value: Sendable>: Sendable {
    private static var linearMax: Int { 8 }

    private(set) var keys: [ReplicaID] = []
    private(set) var values: [Value] = []
    private var index: [ReplicaID: Int] = [:]

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }

    @inline(__always)
    func position(of key: ReplicaID) -> Int? {
        if keys.count > Self.linearMax { return index[key] }
        for position in keys.indices where keys[position] == key { return position }
        return nil
    }

    subscript(key: ReplicaID) -> Value? {
        position(of: key).map { values[$0] }
    }

    /// Appends a new key; the caller has checked it is absent.
    mutating func append(_ key: ReplicaID, _ value: Value) {
        keys.append(key)
        values.append(value)
        if keys.count > Self.linearMax {
            if index.isEmpty {
                for (position, existing) in keys.enumerated() { index[existing] = position }
            } else {
                index[key] = keys.count - 1
            }
        }
    }

    /// Mutates the value at `position` (from `position(of:)`) in place.
    mutating func modifyValue<R>(at position: Int, _ body: (inout Value) -> R) -> R {
        body(&values[position])
    }

    /// Mutates the value under `key`, inserting `defaultValue` first if absent.
    mutating func update<R>(
        _ key: ReplicaID, default defaultValue: @autoclosure () -> Value, _ body: (inout Value) -> R
    ) -> R {
        if let position = position(of: key) { return body(&values[position]) }
        append(key, defaultValue())
        return body(&values[values.count - 1])
    }

    /// Inserts or replaces.
    mutating func set(_ key: ReplicaID, _ value: Value) {
        if let position = position(of: key) {
            values[position] = value
        } else {
            append(key, value)
        }
    }

    /// All entries, in insertion order.
    var entries: [(key: ReplicaID, value: Value)] {
        zip(keys, values).map { (key: $0, value: $1) }
    }
}
