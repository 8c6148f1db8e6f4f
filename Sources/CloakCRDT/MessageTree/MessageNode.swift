/// One message of the conversation tree. The parent, role, author and creation time never
/// change after creation (edits of a prompt are sibling branches, as AI chat apps do it), so
/// every replica can order siblings the same way: by creation timestamp, then author bytes,
/// then counter. Children are an intrusive linked list (first, last, next sibling) to keep
/// a 60,000-message conversation free of per-message child arrays. A node is plain data (its
/// text's tree and its reactions live in `MessageTree` tables), so appending, copying and
/// freeing 60,000 of them never touches a reference count.
struct MessageNode: Sendable {
    let id: PackedID
    /// `PackedID.none` for a root message.
    let parent: PackedID
    let role: MessageRole
    let created: HLCTimestamp
    var isDeleted = false
    var text = TextSequence()
    /// The position of this message's reactions in `MessageTree.reactionSets`, or -1.
    var reactions: Int32 = -1
    var firstChild: Int32 = -1
    var lastChild: Int32 = -1
    var nextSibling: Int32 = -1

    init(
        id: PackedID, parent: PackedID, role: MessageRole, created: HLCTimestamp, isDeleted: Bool = false,
        text: TextSequence = TextSequence(), reactions: Int32 = -1
    ) {
        self.id = id
        self.parent = parent
        self.role = role
        self.created = created
        self.isDeleted = isDeleted
        self.text = text
        self.reactions = reactions
    }
}

/// The tree's links: one slot per message, children per parent in sibling order; and the
/// tables that the plain-data nodes point into.
struct MessageTree: Sendable {
    var nodes: [MessageNode] = []
    /// The trees of texts that have needed more than one run (see `TextSequence`).
    var texts: [TextTree] = []
    /// The reactions of messages that have had any (`MessageNode.reactions`).
    var reactionSets: [ReactionSet] = []
    var slots = MessageIndex()
    var rootFirst: Int32 = -1
    var rootLast: Int32 = -1

    func slot(of id: PackedID) -> Int? { slots[id].map(Int.init) }

    /// Sibling order: creation timestamp, then author replica bytes, then counter. Reads the
    /// fields in place: copying whole nodes would retain and release their storage.
    func precedes(_ lhs: Int, _ rhs: Int, replicas: ReplicaTable) -> Bool {
        let (a, b) = (nodes[lhs].created, nodes[rhs].created)
        if a != b { return a < b }
        let (left, right) = (nodes[lhs].id, nodes[rhs].id)
        if left.replicaIndex != right.replicaIndex { return replicas.precedes(left.replicaIndex, right.replicaIndex) }
        return left.counterValue < right.counterValue
    }

    /// Adds a node and links it among its siblings (appending is O(1) in the common case of
    /// a newest sibling; otherwise the sibling list is walked).
    mutating func add(_ node: MessageNode, parentSlot: Int32?, replicas: ReplicaTable) {
        let slot = Int32(nodes.count)
        nodes.append(node)
        _ = slots.insert(node.id, slot: slot)
        link(slot, parentSlot: parentSlot, replicas: replicas)
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

    /// Links `slot` as the last child of `parentSlot` (nil: the root) if it follows the
    /// current last child in sibling order; otherwise changes nothing and returns false
    /// (snapshot load, where children must come in sibling order).
    mutating func appendChild(_ slot: Int32, parentSlot: Int32?, replicas: ReplicaTable) -> Bool {
        let last = parentSlot.map { nodes[Int($0)].lastChild } ?? rootLast
        if last >= 0 {
            guard precedes(Int(last), Int(slot), replicas: replicas) else { return false }
            nodes[Int(last)].nextSibling = slot
        }
        if let parentSlot {
            if last < 0 { nodes[Int(parentSlot)].firstChild = slot }
            nodes[Int(parentSlot)].lastChild = slot
        } else {
            if last < 0 { rootFirst = slot }
            rootLast = slot
        }
        return true
    }

    /// Every slot in preorder (each message before its subtree, siblings in sibling order),
    /// without recursion: a 10^6-deep chain must not overflow the stack.
    func preorder() -> [Int32] {
        var order: [Int32] = []
        order.reserveCapacity(nodes.count)
        var pending: [Int32] = []
        var current = rootFirst
        while true {
            while current >= 0 {
                order.append(current)
                let next = nodes[Int(current)].nextSibling
                if next >= 0 { pending.append(next) }
                current = nodes[Int(current)].firstChild
            }
            guard let next = pending.popLast() else { return order }
            current = next
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
