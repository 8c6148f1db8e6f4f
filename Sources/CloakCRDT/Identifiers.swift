/// The 16-byte identity of one writer (one device) in every CloakCRDT document.
///
/// ```swift
/// let replica = ReplicaID(bytes: deviceID.bytes)!   // the client's 16-byte DeviceID
/// let other = ReplicaID(high: 1, low: 2)
/// let first = min(replica, other)                    // ordered by bytes, big-endian
/// ```
///
/// The client maps its DeviceID (BLAKE2b-128 of the signing key) one-to-one onto this type.
/// Ordering is the lexicographic order of the 16 bytes; it is the deterministic tie-break
/// of every last-writer-wins register and of concurrent text inserts, so every replica must
/// agree on it, which is why it is defined on bytes and never on memory layout.
public struct ReplicaID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Bytes 0–7, big-endian.
    public let high: UInt64
    /// Bytes 8–15, big-endian.
    public let low: UInt64

    /// Builds an identity from its two big-endian halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Builds an identity from exactly 16 bytes; returns nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 {
                high = high << 8 | UInt64(byte)
            } else {
                low = low << 8 | UInt64(byte)
            }
        }
        self.init(high: high, low: low)
    }

    /// The 16 bytes, in the order `init(bytes:)` takes them.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            out[index] = UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * index))
            out[index + 8] = UInt8(truncatingIfNeeded: low >> UInt64(56 - 8 * index))
        }
        return out
    }

    /// Byte order: `high` first, then `low`, both compared as unsigned big-endian words.
    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool {
        lhs.high != rhs.high ? lhs.high < rhs.high : lhs.low < rhs.low
    }

    /// Lower-case hex of the 16 bytes; an identity is not secret.
    public var description: String {
        bytes.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
        }.joined()
    }
}

/// The identity of one operation: the writer and a per-writer counter.
///
/// ```swift
/// let op = try doc.createMessage(parent: nil, role: .user, text: "hi", replica: &me, physicalMillis: now)
/// let messageID: MessageID = op.id          // a message is named by the op that created it
/// ```
///
/// An operation that creates several items (a text insert of *n* characters) consumes the
/// counters `counter ..< counter + n`, one per item, as Yjs and diamond-types do; so every
/// character, message, reaction and register write has a unique, stable `OperationID`.
/// Counters are unique per writer across all documents of that writer (the `Replica`
/// generator hands them out), which is what makes ids unique without coordination.
public struct OperationID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The writer.
    public var replica: ReplicaID
    /// The writer's counter for this item.
    public var counter: UInt64

    /// Builds an id from its parts.
    public init(replica: ReplicaID, counter: UInt64) {
        self.replica = replica
        self.counter = counter
    }

    /// Orders by writer bytes, then counter: a deterministic total order used where the
    /// state must be listed canonically.
    public static func < (lhs: OperationID, rhs: OperationID) -> Bool {
        lhs.replica != rhs.replica ? lhs.replica < rhs.replica : lhs.counter < rhs.counter
    }

    /// `replicaHex@counter`.
    public var description: String { "\(replica)@\(counter)" }

    /// The id `offset` items further along the same writer's counter.
    func advanced(by offset: UInt64) -> OperationID {
        OperationID(replica: replica, counter: counter &+ offset)
    }
}

/// A message is identified by the id of the operation that created it.
public typealias MessageID = OperationID

/// A contiguous range of one writer's counters: `counter ..< counter + count`.
///
/// ```swift
/// let span = IDSpan(start: OperationID(replica: r, counter: 10), count: 3)  // ids 10, 11, 12
/// ```
///
/// Text deletions name the characters they remove by id spans rather than by positions, so
/// that a deletion means the same characters on every replica whatever else was inserted.
public struct IDSpan: Hashable, Sendable {
    /// The first id of the span.
    public var start: OperationID
    /// How many consecutive counters the span covers (at least 1 in a valid operation).
    public var count: UInt64

    /// Builds a span from its first id and length.
    public init(start: OperationID, count: UInt64) {
        self.start = start
        self.count = count
    }
}

/// Limits on identifiers that keep the internal packed representation exact.
enum IdentifierLimits {
    /// Counters live in the low 48 bits of a packed id (`PackedID`); 2^48 operations per
    /// writer is beyond any device's lifetime, and anything larger is rejected, not wrapped.
    static let counterMax: UInt64 = (1 << 48) - 1
    /// Replica indices live in the high 16 bits; 0xFFFF is the "none" sentinel.
    static let replicasPerDocumentMax = 0xFFFF
}

/// An `OperationID` packed into one word for the hot paths: 16 bits of per-document replica
/// index (assigned in first-seen order by `ReplicaTable`) and 48 bits of counter. Hashing and
/// comparing one word is what makes the per-character text structures fast; the packed form
/// never leaves the document (encodings and hashes use the real `ReplicaID`).
typealias PackedID = UInt64

extension PackedID {
    /// "No item": the start (as a left origin) or the end (as a right origin) of a sequence.
    static let none: PackedID = .max

    init(replicaIndex: Int, counter: UInt64) {
        self = UInt64(truncatingIfNeeded: replicaIndex) << 48 | (counter & IdentifierLimits.counterMax)
    }

    var replicaIndex: Int { Int(truncatingIfNeeded: self >> 48) }
    var counterValue: UInt64 { self & IdentifierLimits.counterMax }
}
