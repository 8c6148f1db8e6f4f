extension TextTree {
    /// Places a remote run between its origins, among concurrent inserts, by the FugueMax
    /// rule in its YjsMod formulation (see the type's documentation for the papers and the
    /// diamond-types code this follows). Returns false, changing nothing visible, when an
    /// origin is not a character of this text.
    ///
    /// The scan starts right after the left origin and stops at the right origin; every run
    /// met in between is concurrent with the new one. For each, compare left origins: a run
    /// whose left origin is further left belongs to an enclosing insert (stop, insert here);
    /// one whose left origin is further right is inside a sibling's subtree (skip it); for
    /// an equal left origin, equal right origins tie-break by replica then counter, and
    /// different right origins decide by their order (`scanning` remembers the first place
    /// the new run could go while the scan continues).
    mutating func integrate(
        _ new: NewRun, left: PackedID, right: PackedID, arena: [UInt8], replicaOrder: (Int, Int) -> Bool
    ) -> Bool {
        defer { fixOverfull() }
        // Validate both origins before touching anything.
        if left != .none && locate(left) == nil { return false }
        if right != .none && locate(right) == nil { return false }
        if left != .none, let location = locate(left) {
            splitRun(
                at: TextLocation(leaf: location.leaf, run: location.run, offset: location.offset + 1), arena: arena)
        }
        if right != .none, let location = locate(right) {
            splitRun(at: location, arena: arena)
        }
        var cursor: TextCursor
        var leftKey: (Int, Int, Int)?
        if left != .none, let location = locate(left) {
            cursor = normalized(TextCursor(leaf: location.leaf, run: location.run + 1))
            leftKey = orderKey(location)
        } else {
            cursor = startCursor
        }
        let rightKey = right == .none ? nil : locate(right).map(orderKey)
        var scanning = false
        var scanStart = cursor
        while let other = run(at: cursor), other.id != right {
            let relation = compareOrigins(other.originLeft, left, leftKey: leftKey)
            if relation < 0 { break }
            if relation == 0 {
                if other.originRight == right {
                    let before =
                        other.id.replicaIndex == new.id.replicaIndex
                        ? new.id < other.id : replicaOrder(new.id.replicaIndex, other.id.replicaIndex)
                    if before { break }
                    scanning = false
                } else if isBefore(other.originRight, rightKey) {
                    if !scanning {
                        scanning = true
                        scanStart = cursor
                    }
                } else {
                    scanning = false
                }
            }
            cursor = normalized(TextCursor(leaf: cursor.leaf, run: cursor.run + 1))
        }
        if scanning { cursor = scanStart }
        insertRemote(new, at: cursor, left: left, right: right)
        return true
    }

    /// -1, 0 or 1 as `candidate` lies before, at or after `left` (none is the start).
    private func compareOrigins(_ candidate: PackedID, _ left: PackedID, leftKey: (Int, Int, Int)?) -> Int {
        if candidate == left { return 0 }
        if candidate == .none { return -1 }
        guard let leftKey else { return 1 }
        guard let location = locate(candidate) else { return -1 }
        return orderKey(location) < leftKey ? -1 : 1
    }

    /// Whether the item `candidate` comes before the item at `key` (none, as a right
    /// origin, is the end, after everything).
    private func isBefore(_ candidate: PackedID, _ key: (Int, Int, Int)?) -> Bool {
        guard candidate != .none, let location = locate(candidate) else { return false }
        guard let key else { return true }
        return orderKey(location) < key
    }

    private mutating func insertRemote(_ new: NewRun, at cursor: TextCursor, left: PackedID, right: PackedID) {
        if let previous = runBefore(cursor), extend(previous, with: new, left: left, right: right) {
            return
        }
        insertRun(new.run(originLeft: left, originRight: right), at: cursor)
    }
}
