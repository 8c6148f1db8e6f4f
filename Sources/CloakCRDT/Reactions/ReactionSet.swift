/// The reactions of one message: an add-wins (observed-remove) set, like `AddWinsSet`, kept
/// as a short array sorted by reaction instead of a hash table. A message has a handful of
/// reactions at most, so a scan beats hashing an emoji string and a reactor id, the array is
/// already in the canonical order snapshots write, and an unreacted message allocates
/// nothing.
struct ReactionSet: Hashable, Sendable {
    /// One reaction and the ids of the adds that are still live, ascending (never empty).
    struct Entry: Hashable, Sendable {
        var reaction: Reaction
        var tags: [OperationID]
    }

    /// Ascending by reaction, no reaction twice.
    private(set) var entries: [Entry] = []

    var isEmpty: Bool { entries.isEmpty }
    var reactions: [Reaction] { entries.map(\.reaction) }
    var tagCount: Int { entries.reduce(0) { $0 + $1.tags.count } }

    /// Where `reaction` is, or where it would be inserted.
    private func position(of reaction: Reaction) -> (index: Int, found: Bool) {
        for (index, entry) in entries.enumerated() {
            if entry.reaction == reaction { return (index, true) }
            if reaction < entry.reaction { return (index, false) }
        }
        return (entries.count, false)
    }

    /// The live tags of `reaction` (what a local remove observes).
    func liveTags(of reaction: Reaction) -> [OperationID] {
        let (index, found) = position(of: reaction)
        return found ? entries[index].tags : []
    }

    mutating func add(_ reaction: Reaction, tag: OperationID) {
        let (index, found) = position(of: reaction)
        guard found else {
            entries.insert(Entry(reaction: reaction, tags: [tag]), at: index)
            return
        }
        guard !entries[index].tags.contains(tag) else { return }
        entries[index].tags.append(tag)
        entries[index].tags.sort()
    }

    mutating func remove(_ reaction: Reaction, observed: [OperationID]) {
        let (index, found) = position(of: reaction)
        guard found else { return }
        entries[index].tags.removeAll { observed.contains($0) }
        if entries[index].tags.isEmpty { entries.remove(at: index) }
    }

    /// Appends an entry that sorts after every present one (snapshot load, which checks the
    /// order and the tags before calling this).
    mutating func append(_ entry: Entry) {
        entries.append(entry)
    }

    init() {}
}
