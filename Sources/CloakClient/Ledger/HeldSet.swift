import CloakProtocol

/// Change sets waiting for a log entry, a key or a gap, by hash, with their total size: the
/// holding is bounded by count and by bytes (ADV-29), and both are cheap to read.
struct HeldSet {
    typealias Entry = (changeSet: ChangeSet, reason: HoldReason)

    private var entries: [ChangeSetHash: Entry] = [:]
    /// Serialised bytes of everything held.
    private(set) var bytes = 0

    var count: Int { entries.count }
    var keys: Dictionary<ChangeSetHash, Entry>.Keys { entries.keys }
    var values: Dictionary<ChangeSetHash, Entry>.Values { entries.values }

    subscript(hash: ChangeSetHash) -> Entry? {
        get { entries[hash] }
        set {
            bytes -= entries[hash]?.changeSet.wire.count ?? 0
            entries[hash] = newValue
            bytes += newValue?.changeSet.wire.count ?? 0
        }
    }

    @discardableResult
    mutating func removeValue(forKey hash: ChangeSetHash) -> Entry? {
        let removed = entries.removeValue(forKey: hash)
        bytes -= removed?.changeSet.wire.count ?? 0
        return removed
    }
}
