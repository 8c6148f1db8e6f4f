extension TextTree {
    /// Splits every leaf that grew past `leafCapacity` during the last operation. Called at
    /// the end of each top-level edit, so locations stay valid within one edit.
    mutating func fixOverfull() {
        guard !overfull.isEmpty else { return }
        let pending = overfull
        overfull.removeAll()
        for leaf in pending where leaves[leaf].runs.count > Self.leafCapacity {
            splitLeaf(leaf)
        }
    }

    /// Splits a leaf into pieces of half capacity, placed right after it in document order.
    private mutating func splitLeaf(_ leaf: Int) {
        if !isTree { becomeTree() }
        let piece = Self.leafCapacity / 2
        let runs = Array(leaves[leaf].runs[piece...])  // the moved runs; the leaf keeps the rest in place
        var newLeaves: [Int32] = []
        var start = 0
        leaves[leaf].runs.removeSubrange(piece...)
        leaves[leaf].visible = leaves[leaf].runs.reduce(0) { $0 + $1.visibleLength }
        while start < runs.count {
            let slice = Array(runs[start..<min(runs.count, start + piece)])
            let newLeaf = leaves.count
            leaves.append(TextLeaf(runs: slice, visible: slice.reduce(0) { $0 + $1.visibleLength }))
            for run in slice {
                // Every key within the run moves with it (see `index` on keys inside runs).
                index[run.id.replicaIndex].assign(
                    Int32(newLeaf), from: run.id.counterValue, below: run.id.counterValue + UInt64(run.length))
            }
            newLeaves.append(Int32(newLeaf))
            start += piece
        }
        order.insert(contentsOf: newLeaves, at: Int(rank[leaf]) + 1)
        rebuildOrderStructures()
    }

    /// Switches from the single-leaf form to the indexed form.
    private mutating func becomeTree() {
        order = [0]
        var pairs: [[(UInt64, Int32)]] = []
        for run in leaves[0].runs {
            let replica = run.id.replicaIndex
            while pairs.count <= replica { pairs.append([]) }
            pairs[replica].append((run.id.counterValue, 0))
        }
        index = pairs.map { RunIndex(sorted: $0.sorted { $0.0 < $1.0 }) }
        rebuildOrderStructures()
    }

    /// Builds a text from runs in document order (snapshot load).
    init(runs: [TextRun]) {
        self.init()
        guard !runs.isEmpty else { return }
        if runs.count <= Self.leafCapacity {
            leaves.append(TextLeaf(runs: runs, visible: runs.reduce(0) { $0 + $1.visibleLength }))
        } else {
            let piece = Self.leafCapacity / 2
            var start = 0
            var pairs: [[(UInt64, Int32)]] = []
            while start < runs.count {
                let slice = Array(runs[start..<min(runs.count, start + piece)])
                let leaf = Int32(leaves.count)
                for run in slice {
                    let replica = run.id.replicaIndex
                    while pairs.count <= replica { pairs.append([]) }
                    pairs[replica].append((run.id.counterValue, leaf))
                }
                leaves.append(TextLeaf(runs: slice, visible: slice.reduce(0) { $0 + $1.visibleLength }))
                start += piece
            }
            order = (0..<Int32(leaves.count)).map { $0 }
            index = pairs.map { RunIndex(sorted: $0.sorted { $0.0 < $1.0 }) }
            rebuildOrderStructures()
        }
        visibleCount = runs.reduce(0) { $0 + $1.visibleLength }
        runCount = runs.count
    }

    /// Every run in document order.
    func forEachRun(_ body: (TextRun) -> Void) {
        for position in 0..<leaves.count {
            for run in leaves[leafID(atOrder: position)].runs { body(run) }
        }
    }

    /// Runs in document order, with runs that continue each other merged: the canonical form
    /// used by snapshots and the state hash, identical on replicas that split runs at
    /// different places.
    func canonicalRuns() -> [TextRun] {
        var result: [TextRun] = []
        result.reserveCapacity(runCount)
        forEachRun { run in
            if let last = result.last, last.isContinued(by: run),
                Int(last.length) + Int(run.length) <= Int(Int32.max)
            {
                result[result.count - 1].length += run.length
                result[result.count - 1].byteCount &+= run.byteCount
            } else {
                result.append(run)
            }
        }
        return result
    }

    /// Approximate heap bytes (for memory reports).
    var approximateBytes: Int {
        var total = leaves.count * 48 + order.count * 8 + fenwick.count * 8
        for leaf in leaves { total += leaf.runs.capacity * MemoryLayout<TextRun>.stride }
        return total + index.count * 64 + (isTree ? runCount * 12 : 0)
    }
}
