/// Text and reaction access by slot: each message's plain-data node together with the tables
/// its text tree and reactions live in.
extension MessageTree {
    func visibleCount(_ slot: Int) -> Int { nodes[slot].text.visibleCount(texts) }

    func runCount(_ slot: Int) -> Int { nodes[slot].text.runCount(texts) }

    func textContains(_ slot: Int, _ id: PackedID) -> Bool { nodes[slot].text.contains(id, texts) }

    func visibleBytes(_ slot: Int, arena: [UInt8], into out: inout [UInt8]) {
        nodes[slot].text.visibleBytes(arena: arena, texts, into: &out)
    }

    func canonicalRuns(_ slot: Int) -> [TextRun] { nodes[slot].text.canonicalRuns(texts) }

    func textBytes(_ slot: Int) -> Int { nodes[slot].text.approximateBytes(texts) }

    mutating func insertLocal(
        _ slot: Int, _ new: NewRun, at position: Int, arena: [UInt8]
    ) -> (left: PackedID, right: PackedID) {
        nodes[slot].text.insertLocal(new, at: position, arena: arena, texts: &texts)
    }

    mutating func deleteLocal(
        _ slot: Int, at position: Int, count: Int, arena: [UInt8], replicas: ReplicaTable
    ) -> [IDSpan] {
        nodes[slot].text.deleteLocal(at: position, count: count, arena: arena, replicas: replicas, texts: &texts)
    }

    mutating func deleteSpan(_ slot: Int, _ id: PackedID, count: UInt64, arena: [UInt8]) {
        nodes[slot].text.deleteSpan(id, count: count, arena: arena, texts: &texts)
    }

    mutating func integrate(
        _ slot: Int, _ new: NewRun, left: PackedID, right: PackedID, arena: [UInt8],
        replicaOrder: (Int, Int) -> Bool
    ) -> Bool {
        nodes[slot].text.integrate(
            new, left: left, right: right, arena: arena, texts: &texts, replicaOrder: replicaOrder)
    }

    /// The reactions of a message (empty when it never had any).
    func reactions(_ slot: Int) -> ReactionSet {
        let index = nodes[slot].reactions
        return index >= 0 ? reactionSets[Int(index)] : ReactionSet()
    }

    func hasReactions(_ slot: Int) -> Bool {
        let index = nodes[slot].reactions
        return index >= 0 && !reactionSets[Int(index)].isEmpty
    }

    mutating func addReaction(_ slot: Int, _ reaction: Reaction, tag: OperationID) {
        if nodes[slot].reactions < 0 {
            nodes[slot].reactions = Int32(reactionSets.count)
            reactionSets.append(ReactionSet())
        }
        reactionSets[Int(nodes[slot].reactions)].add(reaction, tag: tag)
    }

    mutating func removeReaction(_ slot: Int, _ reaction: Reaction, observed: [OperationID]) {
        let index = nodes[slot].reactions
        guard index >= 0 else { return }
        reactionSets[Int(index)].remove(reaction, observed: observed)
    }
}
