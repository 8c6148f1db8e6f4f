/// One message of the conversation tree. The parent, role, author and creation time never
/// change after creation (edits of a prompt are sibling branches, as AI chat apps do it), so
/// every replica can order siblings the same way: by creation timestamp, then author bytes,
/// then counter. Children are an intrusive linked list (first, last, next sibling) to keep
/// a 60,000-message conversation free of per-message child arrays.
struct MessageNode: Sendable {
    let id: PackedID
    /// `PackedID.none` for a root message.
    let parent: PackedID
    let role: MessageRole
    let created: HLCTimestamp
    var isDeleted = false
    var text = TextSequence()
    var reactions: AddWinsSet<Reaction>?
    var firstChild: Int32 = -1
    var lastChild: Int32 = -1
    var nextSibling: Int32 = -1

    init(id: PackedID, parent: PackedID, role: MessageRole, created: HLCTimestamp, text: TextSequence = TextSequence())
    {
        self.id = id
        self.parent = parent
        self.role = role
        self.created = created
        self.text = text
    }
}

/// The tree's links: one slot per message, children per parent in sibling order.
struct MessageTree: Sendable {
    var nodes: [MessageNode] = []
    var slots = MessageIndex()
    var rootFirst: Int32 = -1
    var rootLast: Int32 = -1

    func slot(of id: PackedID) -> Int? { slots[id].map(Int.init) }

    /// Sibling order: creation timestamp, then author replica bytes, then counter.
    func precedes(_ lhs: Int, _ rhs: Int, replicas: ReplicaTable) -> Bool {
        let a = nodes[lhs]
        let b = nodes[rhs]
        if a.created != b.created { return a.created < b.created }
        if a.id.replicaIndex != b.id.replicaIndex { return replicas.precedes(a.id.replicaIndex, b.id.replicaIndex) }
        return a.id.counterValue < b.id.counterValue
    }

    /// Adds a node and links it among its siblings (appending is O(1) in the common case of
    /// a newest sibling; otherwise the sibling list is walked).
    mutating func add(_ node: MessageNode, replicas: ReplicaTable) {
        let slot = Int32(nodes.count)
        nodes.append(node)
        _ = slots.insert(node.id, slot: slot)
        link(slot, replicas: replicas)
    }

    mutating func link(_ slot: Int32, replicas: ReplicaTable) {
        let parent = nodes[Int(slot)].parent
        link(slot, parentSlot: parent == .none ? nil : slots[parent], replicas: replicas)
    }

    mutating func link(_ slot: Int32, parentSlot: Int32?, replicas: ReplicaTable) {
        var first = parentSlot.map { nodes[Int($0)].firstChild } ?? rootFirst
        var last = parentSlot.map { nodes[Int($0)].lastChild } ?? rootLast
        if last < 0 {
            first = slot
            last = slot
        } else if precedes(Int(last), Int(slot), replicas: replicas) {
            nodes[Int(last)].nextSibling = slot
            last = slot
        } else if precedes(Int(slot), Int(first), replicas: replicas) {
            nodes[Int(slot)].nextSibling = first
            first = slot
        } else {
            var previous = first
            while nodes[Int(previous)].nextSibling >= 0,
                precedes(Int(nodes[Int(previous)].nextSibling), Int(slot), replicas: replicas)
            {
                previous = nodes[Int(previous)].nextSibling
            }
            nodes[Int(slot)].nextSibling = nodes[Int(previous)].nextSibling
            nodes[Int(previous)].nextSibling = slot
        }
        if let parentSlot {
            nodes[Int(parentSlot)].firstChild = first
            nodes[Int(parentSlot)].lastChild = last
        } else {
            rootFirst = first
            rootLast = last
        }
    }

    /// Children of a slot (nil: the root) in sibling order.
    func children(of parent: Int?) -> [Int] {
        var result: [Int] = []
        var child = parent.map { nodes[$0].firstChild } ?? rootFirst
        while child >= 0 {
            result.append(Int(child))
            child = nodes[Int(child)].nextSibling
        }
        return result
    }
}
