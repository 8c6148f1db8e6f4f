/// New characters about to enter a text: their first id, scalar count and arena bytes.
struct NewRun {
    var id: PackedID
    var length: Int32
    var contentStart: Int
    var byteCount: Int32

    func run(originLeft: PackedID, originRight: PackedID) -> TextRun {
        TextRun(
            id: id, originLeft: originLeft, originRight: originRight, contentStart: contentStart,
            byteCount: byteCount, length: length, isDeleted: false)
    }
}

extension TextSequence {
    /// Inserts at visible `position` a run made locally; returns its origins (the characters
    /// it was typed between), which the operation carries to other replicas.
    mutating func insertLocal(_ new: NewRun, at position: Int, arena: [UInt8]) -> (left: PackedID, right: PackedID) {
        guard position > 0, let location = locateVisible(position - 1) else {
            let cursor = startCursor
            let right = run(at: cursor)?.id ?? .none
            insertRun(new.run(originLeft: .none, originRight: right), at: cursor)
            fixOverfull()
            return (.none, right)
        }
        let existing = leaves[location.leaf].runs[location.run]
        let left = existing.id &+ UInt64(location.offset)
        var right = PackedID.none
        var placed = TextLocation(leaf: location.leaf, run: location.run + 1, offset: 0)
        if location.offset < Int(existing.length) - 1 {
            right = left &+ 1
            splitRun(
                at: TextLocation(leaf: location.leaf, run: location.run, offset: location.offset + 1), arena: arena)
            insertRun(new.run(originLeft: left, originRight: right), leaf: location.leaf, at: location.run + 1)
        } else {
            let after = normalized(TextCursor(leaf: location.leaf, run: location.run + 1))
            right = run(at: after)?.id ?? .none
            if extend(TextCursor(leaf: location.leaf, run: location.run), with: new, left: left, right: right) {
                placed = TextLocation(leaf: location.leaf, run: location.run, offset: location.offset + 1)
            } else {
                insertRun(new.run(originLeft: left, originRight: right), leaf: location.leaf, at: location.run + 1)
            }
        }
        if overfull.isEmpty {
            // The run now holding the new text starts at visible `position - placed.offset`.
            hint = LocateHint(leaf: placed.leaf, run: placed.run, start: position - placed.offset, version: version)
        } else {
            fixOverfull()
        }
        return (left, right)
    }

    /// Appends `new` to the run at `cursor` when the result is still one valid run: the ids,
    /// origins and arena bytes all continue it. This is what keeps streaming O(1) per run.
    mutating func extend(_ cursor: TextCursor, with new: NewRun, left: PackedID, right: PackedID) -> Bool {
        guard !cursor.isEnd else { return false }
        let existing = leaves[cursor.leaf].runs[cursor.run]
        guard !existing.isDeleted, existing.lastID == left, existing.originRight == right,
            existing.id &+ UInt64(existing.length) == new.id, existing.id.replicaIndex == new.id.replicaIndex,
            existing.contentStart + Int(existing.byteCount) == new.contentStart,
            Int(existing.length) + Int(new.length) <= Int(Int32.max),
            Int(existing.byteCount) + Int(new.byteCount) <= Int(Int32.max)
        else { return false }
        leaves[cursor.leaf].runs[cursor.run].length += new.length
        leaves[cursor.leaf].runs[cursor.run].byteCount += new.byteCount
        adjustVisible(leaf: cursor.leaf, by: Int(new.length))
        return true
    }

    /// Deletes `count` visible characters from `position`; returns the deleted id spans.
    mutating func deleteLocal(at position: Int, count: Int, arena: [UInt8], replicas: ReplicaTable) -> [IDSpan] {
        var spans: [IDSpan] = []
        var remaining = count
        var last: TextLocation?
        while remaining > 0, var location = locateVisible(position) {
            if location.offset > 0 {
                splitRun(at: location, arena: arena)
                location = TextLocation(leaf: location.leaf, run: location.run + 1, offset: 0)
            }
            let length = Int(leaves[location.leaf].runs[location.run].length)
            let take = min(remaining, length)
            if take < length {
                splitRun(at: TextLocation(leaf: location.leaf, run: location.run, offset: take), arena: arena)
            }
            let packed = leaves[location.leaf].runs[location.run].id
            markDeleted(leaf: location.leaf, run: location.run)
            last = location
            remaining -= take
            guard let id = replicas.unpack(packed) else { continue }
            if let last = spans.last, last.start.replica == id.replica, last.start.counter &+ last.count == id.counter {
                spans[spans.count - 1].count += UInt64(take)
            } else {
                spans.append(IDSpan(start: id, count: UInt64(take)))
            }
        }
        if overfull.isEmpty, let last {
            hintBefore(deletedAt: last, position: position)
        } else {
            fixOverfull()
        }
        return spans
    }

    /// After deleting at `position`, remembers the live run ending just before it (where the
    /// next backspace or keystroke lands). The deleted run sits at `location.run`, or at
    /// `location.run - 1` if it merged into a deleted predecessor; either way the runs before
    /// `location.run` up to the first live one are deleted.
    private mutating func hintBefore(deletedAt location: TextLocation, position: Int) {
        var index = min(location.run, leaves[location.leaf].runs.count) - 1
        while index >= 0 {
            let run = leaves[location.leaf].runs[index]
            if !run.isDeleted {
                hint = LocateHint(leaf: location.leaf, run: index, start: position - Int(run.length), version: version)
                return
            }
            index -= 1
        }
    }

    /// Deletes the characters `id ..< id + count` of one writer that belong to this text
    /// (ids of the span outside this text are skipped); idempotent.
    mutating func deleteSpan(_ id: PackedID, count: UInt64, arena: [UInt8]) {
        defer { fixOverfull() }
        var current = id
        let end = id &+ count
        while current < end {
            guard var location = locate(current) else {
                // Jump over the gap to this writer's next run rather than walking counters:
                // a hostile span may cover 2^20 counters of which this text holds none.
                guard let next = nextRunStart(after: current), next < end else { return }
                current = next
                continue
            }
            if location.offset > 0 {
                splitRun(at: location, arena: arena)
                location = TextLocation(leaf: location.leaf, run: location.run + 1, offset: 0)
            }
            let length = UInt64(leaves[location.leaf].runs[location.run].length)
            let take = min(end - current, length)
            if take < length {
                splitRun(at: TextLocation(leaf: location.leaf, run: location.run, offset: Int(take)), arena: arena)
            }
            markDeleted(leaf: location.leaf, run: location.run)
            current &+= take
        }
    }

    private mutating func markDeleted(leaf: Int, run position: Int) {
        guard !leaves[leaf].runs[position].isDeleted else { return }
        leaves[leaf].runs[position].isDeleted = true
        adjustVisible(leaf: leaf, by: -Int(leaves[leaf].runs[position].length))
        mergeDeletedWithNext(leaf: leaf, position: position)
        mergeDeletedWithNext(leaf: leaf, position: position - 1)
    }
}
