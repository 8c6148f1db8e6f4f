/// A last-writer-wins register under the hybrid logical clock: the write with the greatest
/// `(timestamp, writer)` wins, where `writer` is the writing operation's id (replica bytes,
/// then counter). Since one replica's HLC readings strictly increase, the replica tie-break
/// only decides between different devices that wrote at the same reading, and it decides the
/// same way everywhere, so merging is commutative, associative and idempotent.
struct LWWRegister<Value: Hashable & Sendable>: Hashable, Sendable {
    private(set) var value: Value
    private(set) var timestamp: HLCTimestamp
    private(set) var writer: OperationID

    init(value: Value, timestamp: HLCTimestamp, writer: OperationID) {
        self.value = value
        self.timestamp = timestamp
        self.writer = writer
    }

    /// Whether a write stamped `(timestamp, writer)` beats the current one.
    func isBeaten(by timestamp: HLCTimestamp, writer: OperationID) -> Bool {
        timestamp != self.timestamp ? timestamp > self.timestamp : writer > self.writer
    }

    /// Whether `op` is this register's winning write and wrote `value`: true if so, false if
    /// it is the winner with another value or time (a reused id), nil if another write won.
    func isWon(by op: CRDTOperation, with value: Value) -> Bool? {
        guard writer == op.id else { return nil }
        return self.value == value && timestamp == op.timestamp
    }

    mutating func write(_ value: Value, timestamp: HLCTimestamp, writer: OperationID) {
        guard isBeaten(by: timestamp, writer: writer) else { return }
        self.value = value
        self.timestamp = timestamp
        self.writer = writer
    }
}

extension Dictionary {
    /// Writes into the register under `key`, creating it on first write.
    mutating func writeRegister<V>(
        _ key: Key, _ value: V, timestamp: HLCTimestamp, writer: OperationID
    ) where Value == LWWRegister<V> {
        if self[key] == nil {
            self[key] = LWWRegister(value: value, timestamp: timestamp, writer: writer)
        } else {
            self[key]?.write(value, timestamp: timestamp, writer: writer)
        }
    }
}
