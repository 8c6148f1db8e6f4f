/// A run of consecutive characters typed by one writer, stored as one item.
///
/// Run-length encoding is diamond-types' key idea (Gentle, "5000x faster CRDTs", 2021): a
/// run covers characters whose ids are consecutive, where each character's left origin is
/// the previous character and all share one right origin. Such a run is exactly what typing
/// or streaming produces, so a 10,000-chunk AI reply stays one run, O(1) memory. Splitting a
/// run keeps these per-character facts: the right part's left origin is the left part's last
/// character, and both keep the right origin.
struct TextRun: Sendable {
    /// Id of the first character.
    var id: PackedID
    /// Left origin of the first character (`PackedID.none`: the start of the text).
    var originLeft: PackedID
    /// Right origin of every character (`PackedID.none`: the end of the text).
    var originRight: PackedID
    /// Where the UTF-8 bytes start in the document's content arena (meaningless when deleted).
    var contentStart: Int
    /// UTF-8 byte count (meaningless when deleted: deleted content is never read again).
    var byteCount: Int32
    /// Unicode scalar count.
    var length: Int32
    var isDeleted: Bool

    var lastID: PackedID { id &+ UInt64(length) &- 1 }

    /// True when `other` lies in this run: same replica (high bits) and counter in range.
    func contains(_ other: PackedID) -> Bool {
        other &- id < UInt64(length)
    }

    func offset(of other: PackedID) -> Int { Int(other &- id) }

    var visibleLength: Int { isDeleted ? 0 : Int(length) }

    /// Whether `next`, placed right after this run, continues it with identical
    /// per-character facts (so the two may be one run).
    func isContinued(by next: TextRun) -> Bool {
        next.id == id &+ UInt64(length) && next.originLeft == lastID && next.originRight == originRight
            && next.isDeleted == isDeleted && next.id.replicaIndex == id.replicaIndex
    }
}

/// A leaf of the text's run list: at most `TextTree.leafCapacity` runs, in document order.
struct TextLeaf: Sendable {
    var runs: [TextRun] = []
    var visible = 0
}

/// Where a character is: leaf, run within the leaf, offset within the run.
struct TextLocation {
    var leaf: Int
    var run: Int
    var offset: Int
}

/// A run boundary in document order: before run `run` of `leaf` (`run` may equal the leaf's
/// run count only transiently); `leaf == -1` is the end of the text.
struct TextCursor {
    var leaf: Int
    var run: Int
    var isEnd: Bool { leaf < 0 }
    static let end = TextCursor(leaf: -1, run: 0)
}

/// A remembered run and the visible position of its first character, valid while the
/// sequence's `version` is unchanged.
struct LocateHint {
    var leaf: Int
    var run: Int
    var start: Int
    var version: Int
}
