/// One device's operation generator: its `ReplicaID`, the next unused counter and its hybrid
/// logical clock. Every local edit takes it `inout`.
///
/// ```swift
/// var me = Replica(id: ReplicaID(bytes: deviceID)!)
/// var doc = ConversationDocument()
/// let op = try doc.createMessage(parent: nil, role: .user, text: "Hello", replica: &me, physicalMillis: now)
/// persist(me.encoded())                                     // with the documents
/// me = try Replica(decoding: loadedBytes)                   // after a restart
/// ```
///
/// One `Replica` per device, shared by all documents of that device: counters then never
/// repeat across documents, so an `OperationID` is unique per device. Persist it (or its
/// public fields) whenever you persist documents; documents also refuse to reuse a counter
/// they have already seen from this replica, which heals a replica restored from an old
/// backup (ADV-36).
public struct Replica: Hashable, Sendable {
    /// This device's identity.
    public var id: ReplicaID
    /// The next counter to hand out.
    public var nextCounter: UInt64
    /// The device's hybrid logical clock.
    public var clock: HybridLogicalClock

    /// A fresh generator (counter 0, clock at zero) or one restored from its fields.
    public init(id: ReplicaID, nextCounter: UInt64 = 0, clock: HybridLogicalClock = HybridLogicalClock()) {
        self.id = id
        self.nextCounter = nextCounter
        self.clock = clock
    }

    /// Reserves `count` consecutive counters, starting no lower than `floor` (the document's
    /// knowledge of counters this replica already used); nil when the 48-bit counter space
    /// would be exceeded.
    mutating func reserve(_ count: UInt64, floor: UInt64) -> UInt64? {
        let start = max(nextCounter, floor)
        let (end, overflow) = start.addingReportingOverflow(count)
        guard !overflow, end <= IdentifierLimits.counterMax + 1 else { return nil }
        nextCounter = end
        return start
    }

    /// Merges the newest timestamp reported by `ConversationDocument.apply` (or any remote
    /// timestamp) into the clock, so later local writes order after what this device saw.
    /// Readings too far ahead are ignored, as `HybridLogicalClock.observe` documents.
    public mutating func observe(_ timestamp: HLCTimestamp?, physicalMillis: UInt64) {
        guard let timestamp else { return }
        do {
            try clock.observe(timestamp, physicalMillis: physicalMillis)
        } catch {
            // The documented ADV-28 rule: a too-far-ahead reading does not move the clock.
        }
    }

    private static let magic: [UInt8] = Array("CKRP".utf8)
    private static let version: UInt8 = 1

    /// A compact encoding of all fields, for the client's local store.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 40)
        writer.bytes.append(contentsOf: Self.magic)
        writer.byte(Self.version)
        writer.replicaID(id)
        writer.varint(nextCounter)
        writer.timestamp(clock.latest)
        writer.varint(clock.maxSkewMillis)
        return writer.bytes
    }

    /// Restores a generator from `encoded()`; throws on any malformed input.
    public init(decoding bytes: [UInt8]) throws(CRDTDecodingError) {
        var reader = ByteReader(bytes)
        for expected in Self.magic where try reader.byte() != expected {
            throw .badMagic
        }
        let version = try reader.byte()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let id = try reader.replicaID()
        let next = try reader.varint()
        let latest = try reader.timestamp()
        let skew = try reader.varint()
        try reader.expectEnd()
        self.init(id: id, nextCounter: next, clock: HybridLogicalClock(latest: latest, maxSkewMillis: skew))
    }
}
