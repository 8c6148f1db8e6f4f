extension ConversationDocument {
    /// Whether an operation whose counters were all consumed disagrees with what this document
    /// retains about them, i.e. reuses ids rather than repeating itself (CONVERSATIONS.md §6.2).
    /// Only facts every replica with the same state holds are read: a message's immutable
    /// fields, each character's message and origins, live characters' scalars (deleted
    /// content is not retained), register winners and live reaction tags.
    func contradicts(_ op: CRDTOperation) -> Bool {
        let isMessage = slot(of: op.id) != nil
        switch op.payload {
        case .createMessage(let parent, let role, let text):
            guard let slot = slot(of: op.id) else { return true }
            let node = tree.nodes[slot]
            guard node.role == role, node.created == op.timestamp, replicas.unpack(node.parent) == parent else {
                return true
            }
            return charactersContradict(op, in: slot, firstCounter: op.id.counter &+ 1, origins: (nil, nil), text: text)
        case .insertText(let message, let after, let before, let text):
            guard !isMessage, let slot = slot(of: message) else { return true }
            return charactersContradict(op, in: slot, firstCounter: op.id.counter, origins: (after, before), text: text)
        case .selectBranch(let parent, let child):
            if isMessage { return true }
            var key = PackedID.none
            if let parent {
                guard let packed = replicas.pack(parent) else { return false }
                key = packed
            }
            guard let register = branchChoices[key], register.writer == op.id else { return false }
            return register.value != replicas.pack(child) || register.timestamp != op.timestamp
        case .setMetadata(let field, let value):
            if isMessage { return true }
            return metadataRegisters[field].map { $0.isWon(by: op, with: value) == false } ?? false
        case .addReaction(let message, let reaction):
            if isMessage { return true }
            guard let slot = slot(of: message) else { return false }
            for entry in tree.reactions(slot).entries where entry.tags.contains(op.id) {
                return entry.reaction != reaction
            }
            return false
        default:
            return isMessage
        }
    }

    /// Whether the characters an operation would have created (`firstCounter` onwards, with
    /// the origins of CONVERSATIONS.md §7.2) differ from the characters with those ids in
    /// message `slot`: missing, other origins, or, where still live, other scalars.
    private func charactersContradict(
        _ op: CRDTOperation, in slot: Int, firstCounter: UInt64, origins: (after: OperationID?, before: OperationID?),
        text: String
    ) -> Bool {
        let utf8 = Array(text.utf8)
        let count = op.counterCount &- (firstCounter &- op.id.counter)
        let replica = op.id.replica
        var done: UInt64 = 0
        var byte = 0
        while done < count {
            let counter = firstCounter &+ done
            guard let packed = replicas.pack(OperationID(replica: replica, counter: counter)),
                let run = tree.nodes[slot].text.run(containing: packed, tree.texts)
            else { return true }
            let offset = Int(packed &- run.id)
            let previous = OperationID(replica: replica, counter: counter &- 1)
            let expectedLeft = done == 0 ? origins.after : previous
            let left = offset == 0 ? replicas.unpack(run.originLeft) : previous
            guard left == expectedLeft, replicas.unpack(run.originRight) == origins.before else { return true }
            let taken = min(UInt64(run.length) - UInt64(offset), count - done)
            let length = UTF8Scalars.byteLength(utf8, from: byte, scalars: Int(taken))
            if !run.isDeleted {
                let start = run.contentStart + UTF8Scalars.byteLength(arena, from: run.contentStart, scalars: offset)
                guard start + length <= run.contentStart + Int(run.byteCount),
                    arena[start..<(start + length)].elementsEqual(utf8[byte..<(byte + length)])
                else { return true }
            }
            done += taken
            byte += length
        }
        return false
    }
}
