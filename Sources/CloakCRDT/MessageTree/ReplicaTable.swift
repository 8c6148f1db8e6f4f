/// Interns the `ReplicaID`s a document has met into small indices (first-seen order), so
/// per-character ids pack into one word (`PackedID`). Indices differ between replicas;
/// everything that leaves the document (operations, snapshots, the state hash) is written
/// with the real ids, and every order that matters compares the real ids.
struct ReplicaTable: Sendable {
    private var map = ReplicaMap<Int>()

    var ids: [ReplicaID] { map.keys }
    var count: Int { map.count }

    func index(of id: ReplicaID) -> Int? { map.position(of: id) }

    /// The index of `id`, adding it if new; nil when the table is full.
    mutating func intern(_ id: ReplicaID) -> Int? {
        if let found = map.position(of: id) { return found }
        guard map.count < IdentifierLimits.replicasPerDocumentMax else { return nil }
        map.append(id, map.count)
        return map.count - 1
    }

    func id(at index: Int) -> ReplicaID { map.keys[index] }

    func pack(_ id: OperationID) -> PackedID? {
        guard let index = map.position(of: id.replica), id.counter <= IdentifierLimits.counterMax else { return nil }
        return PackedID(replicaIndex: index, counter: id.counter)
    }

    func unpack(_ id: PackedID) -> OperationID? {
        guard id != .none, id.replicaIndex < map.count else { return nil }
        return OperationID(replica: map.keys[id.replicaIndex], counter: id.counterValue)
    }

    /// Orders two indices by the replica ids they stand for.
    func precedes(_ lhs: Int, _ rhs: Int) -> Bool { map.keys[lhs] < map.keys[rhs] }

    init(ids: [ReplicaID] = []) {
        for (index, id) in ids.enumerated() { map.append(id, index) }
    }
}

/// Message id → slot, as one sorted `RunIndex` per replica instead of a hash table: a device's
/// message counters arrive in increasing order, so inserts append (no hashing, no rehashing)
/// and a lookup is two short binary searches. Snapshot loads of long conversations are
/// dominated by building this map, which is why it is not a `Dictionary`.
struct MessageIndex: Sendable {
    private var perReplica: [RunIndex] = []
    private(set) var count = 0

    subscript(id: PackedID) -> Int32? {
        let replica = id.replicaIndex
        guard replica < perReplica.count, let found = perReplica[replica].value(atMost: id.counterValue),
            found.key == id.counterValue
        else { return nil }
        return found.value
    }

    /// Builds the index of every id in `counters` (per replica index, the (counter, slot) of
    /// each message, in any order); nil when an id repeats. Sorting once and building the
    /// chunks directly is what a snapshot load of 60,000 messages wants, rather than 60,000
    /// inserts.
    init?(counters: [[(UInt64, Int32)]]) {
        perReplica.reserveCapacity(counters.count)
        for var pairs in counters {
            if !Self.isStrictlyAscending(pairs) {
                pairs.sort { $0.0 < $1.0 }
                guard Self.isStrictlyAscending(pairs) else { return nil }
            }
            perReplica.append(RunIndex(sorted: pairs))
            count += pairs.count
        }
    }

    private static func isStrictlyAscending(_ pairs: [(UInt64, Int32)]) -> Bool {
        pairs.indices.dropFirst().allSatisfy { pairs[$0 - 1].0 < pairs[$0].0 }
    }

    init() {}

    /// Adds `id`; returns false (changing nothing) if it is already present.
    mutating func insert(_ id: PackedID, slot: Int32) -> Bool {
        let replica = id.replicaIndex
        while perReplica.count <= replica { perReplica.append(RunIndex()) }
        guard perReplica[replica].insert(id.counterValue, slot, overwrite: false) else { return false }
        count += 1
        return true
    }
}
