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

extension TextTree {
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
        var extended = existing  // one write back: each nested element write checks uniqueness twice
        extended.length += new.length
        extended.byteCount += new.byteCount
        leaves[cursor.leaf].runs[cursor.run] = extended
        adjustVisible(leaf: cursor.leaf, by: Int(new.length))
        return true
    }

    /// Deletes `count` visible characters from `position`; returns the deleted id spans.
    mutating func deleteLocal(at position: Int, count: Int, arena: [UInt8], replicas: ReplicaTable) -> [IDSpan] {
        var spans: [IDSpan] = []
        var remaining = count
        var last: TextLocation?
        while remaining > 0, var location = locateVisible(position) {
            if let taken = shrinkIntoDeletedSuccessor(location, count: remaining, arena: arena) {
                // Backspacing at the end of a run: no split, no merge (see below).
                let start = leaves[location.leaf].runs[location.run + 1].id
                location = TextLocation(leaf: location.leaf, run: location.run + 1, offset: 0)
                last = location
                remaining -= taken
                if let id = replicas.unpack(start) { appendSpan(IDSpan(start: id, count: UInt64(taken)), to: &spans) }
                continue
            }
            let start = leaves[location.leaf].runs[location.run].id
            if let taken = growDeletedPredecessor(location, count: remaining, arena: arena) {
                // Deleting forward from a deleted run: no split, no merge either.
                last = location
                remaining -= taken
                if let id = replicas.unpack(start) { appendSpan(IDSpan(start: id, count: UInt64(taken)), to: &spans) }
                continue
            }
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
            appendSpan(IDSpan(start: id, count: UInt64(take)), to: &spans)
        }
        if overfull.isEmpty, let last {
            hintBefore(deletedAt: last, position: position)
        } else {
            fixOverfull()
        }
        return spans
    }

    private func appendSpan(_ span: IDSpan, to spans: inout [IDSpan]) {
        if let last = spans.last, last.start.replica == span.start.replica,
            last.start.counter &+ last.count == span.start.counter
        {
            spans[spans.count - 1].count += span.count
        } else if spans.isEmpty {
            spans = [span]  // allocates exactly one element, cheaper than growing an empty array
        } else {
            spans.append(span)
        }
    }

    /// Deletes the last characters of a live run, from `location` to its end (at most
    /// `count`), when the next run of the leaf is a deleted continuation of it (what repeated
    /// backspacing leaves): the boundary between the two runs moves left. That is the state
    /// splitting, marking and merging would produce, without touching the run list's shape
    /// or inserting and removing index keys. Returns how many characters it deleted, or nil
    /// (changing nothing) when the shape does not match.
    private mutating func shrinkIntoDeletedSuccessor(
        _ location: TextLocation, count: Int, arena: [UInt8]
    ) -> Int? {
        guard location.offset > 0, location.run + 1 < leaves[location.leaf].runs.count else { return nil }
        let run = leaves[location.leaf].runs[location.run]
        let next = leaves[location.leaf].runs[location.run + 1]
        let taken = Int(run.length) - location.offset
        guard !run.isDeleted, next.isDeleted, taken <= count, next.id == run.id &+ UInt64(run.length),
            next.id.replicaIndex == run.id.replicaIndex, next.originLeft == run.lastID,
            next.originRight == run.originRight, Int(next.length) + taken <= Int(Int32.max)
        else { return nil }
        version &+= 1
        var byteOffset = location.offset
        if run.byteCount != run.length {
            byteOffset = UTF8Scalars.byteLength(arena, from: run.contentStart, scalars: location.offset)
        }
        let newStart = run.id &+ UInt64(location.offset)
        leaves[location.leaf].runs[location.run].length = Int32(location.offset)
        leaves[location.leaf].runs[location.run].byteCount = Int32(byteOffset)
        leaves[location.leaf].runs[location.run + 1].id = newStart
        leaves[location.leaf].runs[location.run + 1].originLeft = newStart &- 1
        leaves[location.leaf].runs[location.run + 1].length += Int32(taken)
        leaves[location.leaf].runs[location.run + 1].contentStart = run.contentStart + byteOffset
        // `next`'s index key, if it has one, now lies inside it: still the right leaf (`index`).
        adjustVisible(leaf: location.leaf, by: -taken)
        return taken
    }

    /// Deletes the first `count` characters of a live run (not all of it) when the run before
    /// it in the leaf is a deleted run that it continues (deleting forward from a deleted
    /// run): the boundary moves right, the mirror image of `shrinkIntoDeletedSuccessor`, with
    /// the same result as splitting, marking and merging. Returns how many characters it
    /// deleted, or nil (changing nothing) when the shape does not match.
    private mutating func growDeletedPredecessor(_ location: TextLocation, count: Int, arena: [UInt8]) -> Int? {
        guard location.offset == 0, location.run > 0 else { return nil }
        let run = leaves[location.leaf].runs[location.run]
        let previous = leaves[location.leaf].runs[location.run - 1]
        let taken = count
        guard !run.isDeleted, previous.isDeleted, taken < Int(run.length),
            run.id == previous.id &+ UInt64(previous.length),
            run.id.replicaIndex == previous.id.replicaIndex, run.originLeft == previous.lastID,
            run.originRight == previous.originRight, Int(previous.length) + taken <= Int(Int32.max)
        else { return nil }
        version &+= 1
        var byteOffset = taken
        if run.byteCount != run.length {
            byteOffset = UTF8Scalars.byteLength(arena, from: run.contentStart, scalars: taken)
        }
        let newStart = run.id &+ UInt64(taken)
        var remainder = run
        remainder.id = newStart
        remainder.originLeft = newStart &- 1
        remainder.length -= Int32(taken)
        remainder.contentStart += byteOffset
        remainder.byteCount -= Int32(byteOffset)
        leaves[location.leaf].runs[location.run - 1].length += Int32(taken)
        leaves[location.leaf].runs[location.run] = remainder
        // `run`'s index key, if it has one, now lies inside `previous`, in the same leaf.
        adjustVisible(leaf: location.leaf, by: -taken)
        return taken
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
