/// The text of one message: a sequence CRDT of run-length encoded items.
///
/// Merge semantics are Fugue (Weidner and Kleppmann, "The Art of the Fugue: Minimizing
/// Interleaving in Collaborative Text Editing", 2023) in its FugueMax form, implemented as
/// YjsMod: Yjs/YATA's integration (Nicolaescu et al., 2016) over left and right origins,
/// with the right-origin comparison diamond-types uses (`listmerge/merge.rs`), which the
/// Fugue paper proves equivalent to FugueMax. Concurrent inserts at one position therefore
/// never interleave character by character. RGA (Roh et al., 2011) is the ancestor of the
/// left-origin idea.
///
/// Storage has two forms. A text of at most one run (a message created with its text and
/// never edited, or a reply streamed by one device: almost every message of a chat) keeps
/// that run inline. The first edit that needs a second run moves the text into a `TextTree`
/// in the document's table of trees (`MessageTree.texts`, passed in as `texts`); it never
/// moves back. The value itself holds no references, so a message node is plain data:
/// loading, merging and copying 60,000 messages neither retains nor releases per message.
/// Both forms produce the same runs, so the canonical encoding does not depend on the form.
struct TextSequence: Sendable {
    /// The only run, while `tree` is -1 (nil: the empty text).
    private var single: TextRun?
    /// The position of this text's tree in `texts`, or -1 for the inline form.
    private var tree: Int32 = -1

    init() {}

    /// A text of exactly one run (message creation).
    init(run: TextRun) {
        single = run
    }

    /// Builds a text from runs in document order (snapshot load); a text of several runs
    /// appends its tree to `texts`.
    init(runs: [TextRun], texts: inout [TextTree]) {
        if runs.count <= 1 {
            single = runs.first
        } else {
            tree = Int32(texts.count)
            texts.append(TextTree(runs: runs))
        }
    }

    func visibleCount(_ texts: [TextTree]) -> Int {
        tree >= 0 ? texts[Int(tree)].visibleCount : single?.visibleLength ?? 0
    }

    func runCount(_ texts: [TextTree]) -> Int {
        tree >= 0 ? texts[Int(tree)].runCount : single == nil ? 0 : 1
    }

    /// The run of a one-run text in the inline form (nil when empty or a tree).
    var onlyRun: TextRun? { tree < 0 ? single : nil }

    /// Whether the character `id` belongs to this text.
    func contains(_ id: PackedID, _ texts: [TextTree]) -> Bool {
        if tree >= 0 { return texts[Int(tree)].locate(id) != nil }
        guard let single, id != .none else { return false }
        return single.contains(id)
    }

    /// The run holding the character `id` (a copy), if it belongs to this text.
    func run(containing id: PackedID, _ texts: [TextTree]) -> TextRun? {
        if tree >= 0 {
            let text = texts[Int(tree)]
            return text.locate(id).map { text.leaves[$0.leaf].runs[$0.run] }
        }
        guard let single, id != .none, single.contains(id) else { return nil }
        return single
    }

    /// Every run in document order.
    func forEachRun(_ texts: [TextTree], _ body: (TextRun) -> Void) {
        if tree >= 0 {
            texts[Int(tree)].forEachRun(body)
        } else if let single {
            body(single)
        }
    }

    /// Runs in canonical form (see `TextTree.canonicalRuns`).
    func canonicalRuns(_ texts: [TextTree]) -> [TextRun] {
        if tree >= 0 { return texts[Int(tree)].canonicalRuns() }
        return single.map { [$0] } ?? []
    }

    /// The visible text's UTF-8 bytes.
    func visibleBytes(arena: [UInt8], _ texts: [TextTree], into out: inout [UInt8]) {
        forEachRun(texts) { run in
            guard !run.isDeleted, run.byteCount > 0 else { return }
            let end = run.contentStart + Int(run.byteCount)
            guard run.contentStart >= 0, end <= arena.count else { return }
            out.append(contentsOf: arena[run.contentStart..<end])
        }
    }

    /// Approximate heap bytes (for memory reports): nothing for the inline form.
    func approximateBytes(_ texts: [TextTree]) -> Int {
        tree >= 0 ? MemoryLayout<TextTree>.stride + texts[Int(tree)].approximateBytes : 0
    }

    // MARK: Edits

    /// Inserts at visible `position` a run made locally; returns its origins. Appending to
    /// an empty or one-run text (typing at the end, streaming) stays inline.
    mutating func insertLocal(
        _ new: NewRun, at position: Int, arena: [UInt8], texts: inout [TextTree]
    ) -> (left: PackedID, right: PackedID) {
        if tree < 0 {
            guard let run = single else {
                single = new.run(originLeft: .none, originRight: .none)
                return (.none, .none)
            }
            if position == run.visibleLength, position > 0, extendSingle(with: new, left: run.lastID, right: .none) {
                return (run.lastID, .none)
            }
            moveToTree(&texts)
        }
        return texts[Int(tree)].insertLocal(new, at: position, arena: arena)
    }

    /// Deletes `count` visible characters from `position`; returns the deleted id spans.
    mutating func deleteLocal(
        at position: Int, count: Int, arena: [UInt8], replicas: ReplicaTable, texts: inout [TextTree]
    ) -> [IDSpan] {
        guard count > 0 else { return [] }
        if tree < 0 { moveToTree(&texts) }
        return texts[Int(tree)].deleteLocal(at: position, count: count, arena: arena, replicas: replicas)
    }

    /// Deletes the characters `id ..< id + count` that belong to this text; idempotent.
    mutating func deleteSpan(_ id: PackedID, count: UInt64, arena: [UInt8], texts: inout [TextTree]) {
        if tree < 0 {
            // Only a span that overlaps the one run needs the tree.
            guard let run = single, !run.isDeleted, run.id.replicaIndex == id.replicaIndex,
                id.counterValue < run.id.counterValue + UInt64(run.length),
                run.id.counterValue < id.counterValue &+ count
            else { return }
            moveToTree(&texts)
        }
        texts[Int(tree)].deleteSpan(id, count: count, arena: arena)
    }

    /// Places a remote run between its origins (see `TextTree.integrate`). Appending right
    /// after the last character of a one-run text, or into an empty text, stays inline.
    mutating func integrate(
        _ new: NewRun, left: PackedID, right: PackedID, arena: [UInt8], texts: inout [TextTree],
        replicaOrder: (Int, Int) -> Bool
    ) -> Bool {
        if tree < 0 {
            if right == .none && single == nil && left == .none {
                single = new.run(originLeft: .none, originRight: .none)
                return true
            }
            if right == .none, let run = single, left == run.lastID, extendSingle(with: new, left: left, right: right) {
                return true
            }
            moveToTree(&texts)
        }
        return texts[Int(tree)].integrate(new, left: left, right: right, arena: arena, replicaOrder: replicaOrder)
    }

    /// `TextTree.extend` for the inline run: appends `new` when the result is still one run.
    private mutating func extendSingle(with new: NewRun, left: PackedID, right: PackedID) -> Bool {
        guard let run = single, !run.isDeleted, run.lastID == left, run.originRight == right,
            run.id &+ UInt64(run.length) == new.id, run.id.replicaIndex == new.id.replicaIndex,
            run.contentStart + Int(run.byteCount) == new.contentStart,
            Int(run.length) + Int(new.length) <= Int(Int32.max),
            Int(run.byteCount) + Int(new.byteCount) <= Int(Int32.max)
        else { return false }
        single?.length += new.length
        single?.byteCount += new.byteCount
        return true
    }

    /// Moves the inline run into a new tree at the end of `texts`.
    private mutating func moveToTree(_ texts: inout [TextTree]) {
        tree = Int32(texts.count)
        texts.append(TextTree(runs: single.map { [$0] } ?? []))
        single = nil
    }
}
