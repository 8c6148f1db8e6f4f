/// A priority queue of timed items: the earliest first, and items due at the same time in the
/// order they were added (so a run never depends on a heap's tie-breaking).
struct EventQueue<Item> {
    private var heap: [(time: UInt64, seq: UInt64, item: Item)] = []
    private var nextSeq: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var nextTime: UInt64? { heap.first?.time }

    mutating func push(_ item: Item, at time: UInt64) {
        heap.append((time, nextSeq, item))
        nextSeq += 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.less(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (time: UInt64, item: Item)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count, Self.less(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count, Self.less(heap[right], heap[smallest]) { smallest = right }
            guard smallest != parent else { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.time, top.item)
    }

    private static func less(_ a: (time: UInt64, seq: UInt64, item: Item), _ b: (time: UInt64, seq: UInt64, item: Item)) -> Bool {
        (a.time, a.seq) < (b.time, b.seq)
    }
}
