/// The run list of a message text that has had more than one run (see `TextSequence`).
///
/// It is a two-level B-tree: leaves of at most `leafCapacity` runs in document order, a
/// Fenwick tree over the leaves' visible lengths for position lookups, and per-writer
/// `RunIndex`es from run ids to leaves for id lookups. A text of up to one leaf uses none
/// of the upper structures.
struct TextTree: Sendable {
    static let leafCapacity = 64

    /// Leaves by leaf id. A plain array, not a wrapper with the first leaf inline: a wrapper's
    /// `_modify` accessor around the array's costs a coroutine frame allocation per access.
    var leaves: [TextLeaf] = []
    /// Leaf ids in document order; empty while there is at most one leaf.
    var order: [Int32] = []
    /// Leaf id → position in `order`; empty while there is at most one leaf.
    var rank: [Int32] = []
    /// Fenwick tree over `order` of the leaves' visible lengths, except for the change
    /// `fenwickPending` holds.
    var fenwick: [Int] = []
    /// A change of one leaf's visible length not yet added to `fenwick`: typing and
    /// backspacing stay in one leaf, so the tree takes one update when the edits move to
    /// another leaf or a lookup needs it, instead of one per keystroke.
    var fenwickPending: (leaf: Int, delta: Int)?
    /// Per replica index: counter → leaf, for finding a character by id; empty while there
    /// is at most one leaf.
    ///
    /// Keys are leaf hints, not exactly the run starts. Two invariants hold instead: (1) for
    /// every character, the greatest key of its writer at or below its counter names its
    /// leaf; (2) a run whose first counter does not follow a counter present in the text has
    /// a key at that counter. So the right part of a split gets no key (its counters follow
    /// the left part's, in the same leaf), moving a boundary between two runs of a leaf
    /// changes no key (a key left inside a run still names the run's leaf), a run moved to a
    /// new leaf takes every key inside it along, and a run merged into its left neighbour
    /// loses its key to keep the index small. (2) is what keeps `nextRunStart` exact: after
    /// a gap in a writer's counters, the next key is the next run's start. Typing and
    /// backspacing then split and merge runs without touching the index.
    var index: [RunIndex] = []
    /// Leaves that exceeded `leafCapacity` during the current operation.
    var overfull: [Int] = []
    var visibleCount = 0
    var runCount = 0
    /// Bumped by every change to the run list; a `LocateHint` is valid only at its version.
    var version = 0
    /// Where the last local insert left off: typing continues there, so the next lookup of a
    /// visible position usually needs neither the Fenwick tree nor a leaf scan (the cursor
    /// cache that diamond-types keeps for local edits).
    var hint: LocateHint?

    var isTree: Bool { !order.isEmpty }
    var leafCount: Int { leaves.count }

    func leafID(atOrder position: Int) -> Int { isTree ? Int(order[position]) : position }
    func orderPosition(of leaf: Int) -> Int { isTree ? Int(rank[leaf]) : leaf }

    // MARK: Lookups

    /// The character at visible position `position` (0-based, `< visibleCount`).
    mutating func locateVisible(_ position: Int) -> TextLocation? {
        guard position >= 0, position < visibleCount else { return nil }
        if let hint, hint.version == version, position >= hint.start {
            // The hinted run, or one of the next few in its leaf: typing continues at the
            // hint, and deleting forward or typing after a deletion lands just past it.
            var start = hint.start
            var index = hint.run
            while index < min(hint.run + 4, leaves[hint.leaf].runs.count) {
                let run = leaves[hint.leaf].runs[index]
                if !run.isDeleted {
                    if position - start < Int(run.length) {
                        return TextLocation(leaf: hint.leaf, run: index, offset: position - start)
                    }
                    start += Int(run.length)
                }
                index += 1
            }
        }
        var leaf = 0
        var local = position
        if isTree {
            flushFenwick()
            let (orderIndex, before) = fenwickFind(position)
            leaf = Int(order[orderIndex])
            local = position - before
        }
        let runs = leaves[leaf].runs
        for (index, run) in runs.enumerated() where !run.isDeleted {
            if local < Int(run.length) { return TextLocation(leaf: leaf, run: index, offset: local) }
            local -= Int(run.length)
        }
        return nil
    }

    /// The character with id `id`, if it belongs to this text.
    func locate(_ id: PackedID) -> TextLocation? {
        guard id != .none, !leaves.isEmpty else { return nil }
        var leaf = 0
        if isTree {
            let replica = id.replicaIndex
            guard replica < index.count, let found = index[replica].value(atMost: id.counterValue) else {
                return nil
            }
            leaf = Int(found.value)
        }
        let runs = leaves[leaf].runs
        for index in runs.indices where runs[index].contains(id) {
            return TextLocation(leaf: leaf, run: index, offset: runs[index].offset(of: id))
        }
        return nil
    }

    /// The smallest run start of `id`'s replica greater than `id` (to skip id gaps).
    func nextRunStart(after id: PackedID) -> PackedID? {
        let replica = id.replicaIndex
        if isTree {
            guard replica < index.count, let counter = index[replica].successor(of: id.counterValue) else {
                return nil
            }
            return PackedID(replicaIndex: replica, counter: counter)
        }
        var best: PackedID?
        for run in (leaves.isEmpty ? [] : leaves[0].runs) where run.id.replicaIndex == replica && run.id > id {
            best = min(best ?? run.id, run.id)
        }
        return best
    }

    /// A comparable document-order key for a location.
    func orderKey(_ location: TextLocation) -> (Int, Int, Int) {
        (orderPosition(of: location.leaf), location.run, location.offset)
    }

    func run(at cursor: TextCursor) -> TextRun? {
        cursor.isEnd ? nil : leaves[cursor.leaf].runs[cursor.run]
    }

    /// Moves a cursor that sits past its leaf's last run to the next leaf (or the end).
    func normalized(_ cursor: TextCursor) -> TextCursor {
        var cursor = cursor
        while !cursor.isEnd && cursor.run >= leaves[cursor.leaf].runs.count {
            let next = orderPosition(of: cursor.leaf) + 1
            cursor = next < leaves.count ? TextCursor(leaf: leafID(atOrder: next), run: 0) : .end
        }
        return cursor
    }

    /// The cursor before the first run.
    var startCursor: TextCursor {
        leaves.isEmpty ? .end : normalized(TextCursor(leaf: leafID(atOrder: 0), run: 0))
    }

    /// The run just before `cursor` (the last run when `cursor` is the end).
    func runBefore(_ cursor: TextCursor) -> TextCursor? {
        if cursor.isEnd {
            guard !leaves.isEmpty else { return nil }
            let leaf = leafID(atOrder: leaves.count - 1)
            return leaves[leaf].runs.isEmpty ? nil : TextCursor(leaf: leaf, run: leaves[leaf].runs.count - 1)
        }
        if cursor.run > 0 { return TextCursor(leaf: cursor.leaf, run: cursor.run - 1) }
        let position = orderPosition(of: cursor.leaf)
        guard position > 0 else { return nil }
        let leaf = leafID(atOrder: position - 1)
        return TextCursor(leaf: leaf, run: leaves[leaf].runs.count - 1)
    }

    // MARK: Fenwick tree

    private func fenwickFind(_ position: Int) -> (orderIndex: Int, before: Int) {
        var index = 0
        var remaining = position
        var step = 1
        while step * 2 <= fenwick.count { step *= 2 }
        while step > 0 {
            let next = index + step
            if next <= fenwick.count && fenwick[next - 1] <= remaining {
                index = next
                remaining -= fenwick[next - 1]
            }
            step /= 2
        }
        return (index, position - remaining)
    }

    private mutating func fenwickAdd(_ orderIndex: Int, _ delta: Int) {
        var index = orderIndex + 1
        while index <= fenwick.count {
            fenwick[index - 1] += delta
            index += index & -index
        }
    }

    private mutating func flushFenwick() {
        guard let pending = fenwickPending else { return }
        fenwickPending = nil
        fenwickAdd(Int(rank[pending.leaf]), pending.delta)
    }

    mutating func rebuildOrderStructures() {
        version &+= 1
        fenwickPending = nil  // rebuilt from the leaves' current lengths below
        rank = [Int32](repeating: 0, count: leaves.count)
        for (position, leaf) in order.enumerated() { rank[Int(leaf)] = Int32(position) }
        fenwick = order.map { leaves[Int($0)].visible }
        var index = 1
        while index <= fenwick.count {
            let parent = index + (index & -index)
            if parent <= fenwick.count { fenwick[parent - 1] += fenwick[index - 1] }
            index += 1
        }
    }

    // MARK: Structural edits

    mutating func adjustVisible(leaf: Int, by delta: Int) {
        version &+= 1
        guard delta != 0 else { return }
        leaves[leaf].visible += delta
        visibleCount += delta
        guard isTree else { return }
        if let pending = fenwickPending, pending.leaf == leaf {
            fenwickPending = (leaf, pending.delta + delta)
        } else {
            flushFenwick()
            fenwickPending = (leaf, delta)
        }
    }

    /// Inserts `run` before run `position` of `leaf` (a new leaf 0 if the text is empty).
    mutating func insertRun(_ run: TextRun, leaf: Int, at position: Int) {
        if leaves.isEmpty { leaves.append(TextLeaf()) }
        version &+= 1
        leaves[leaf].runs.insert(run, at: position)
        runCount += 1
        adjustVisible(leaf: leaf, by: run.visibleLength)
        if isTree { indexSet(run.id, leaf: leaf) }
        if leaves[leaf].runs.count > Self.leafCapacity { overfull.append(leaf) }
    }

    /// Inserts `run` at a cursor (the end: after the last run).
    mutating func insertRun(_ run: TextRun, at cursor: TextCursor) {
        if cursor.isEnd {
            let leaf = leaves.isEmpty ? 0 : leafID(atOrder: leaves.count - 1)
            insertRun(run, leaf: leaf, at: leaves.isEmpty ? 0 : leaves[leaf].runs.count)
        } else {
            insertRun(run, leaf: cursor.leaf, at: cursor.run)
        }
    }

    /// Splits run `location.run` so that a new run starts at `location.offset`.
    mutating func splitRun(at location: TextLocation, arena: [UInt8]) {
        let original = leaves[location.leaf].runs[location.run]
        let offset = location.offset
        guard offset > 0, offset < Int(original.length) else { return }
        version &+= 1
        var byteOffset = offset
        if !original.isDeleted && original.byteCount != original.length {
            byteOffset = UTF8Scalars.byteLength(arena, from: original.contentStart, scalars: offset)
        }
        var left = original
        left.length = Int32(offset)
        left.byteCount = Int32(byteOffset)
        var right = original
        right.id = original.id &+ UInt64(offset)
        right.originLeft = right.id &- 1
        right.length = original.length - Int32(offset)
        right.contentStart = original.contentStart + byteOffset
        right.byteCount = original.byteCount - Int32(byteOffset)
        leaves[location.leaf].runs[location.run] = left
        leaves[location.leaf].runs.insert(right, at: location.run + 1)
        runCount += 1
        // No index key for `right`: it is governed by `left`'s (see `index`).
        if leaves[location.leaf].runs.count > Self.leafCapacity { overfull.append(location.leaf) }
    }

    /// Merges run `position` of `leaf` with the next run of the same leaf when both are
    /// deleted and continue each other (keeps backspaced text from fragmenting the list).
    mutating func mergeDeletedWithNext(leaf: Int, position: Int) {
        // Read the two runs by value: holding the array would make the mutation below copy it.
        guard position >= 0, position + 1 < leaves[leaf].runs.count else { return }
        let left = leaves[leaf].runs[position]
        let right = leaves[leaf].runs[position + 1]
        guard left.isDeleted, left.isContinued(by: right), Int(left.length) + Int(right.length) <= Int(Int32.max)
        else { return }
        version &+= 1
        leaves[leaf].runs[position].length += right.length
        leaves[leaf].runs.remove(at: position + 1)
        runCount -= 1
        if isTree { index[right.id.replicaIndex].remove(right.id.counterValue) }
    }

    private mutating func indexSet(_ id: PackedID, leaf: Int) {
        let replica = id.replicaIndex
        while index.count <= replica { index.append(RunIndex()) }
        index[replica].set(id.counterValue, Int32(leaf))
    }
}
