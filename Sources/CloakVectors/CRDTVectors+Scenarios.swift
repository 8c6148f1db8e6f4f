import CloakCRDT

/// The situations `document_merge.json` covers, written with the public editing API exactly as
/// an app would produce them (CONVERSATIONS.md §14).
enum MergeScenarios {
    static func all() throws -> [MergeScenario] {
        [
            try streaming(), try concurrentInserts(), try concurrentDeletes(), try branches(), try reactions(),
            try metadata(), try reuse(), try farFuture(), try library(),
        ]
    }

    static func first(_ scenario: MergeScenario, _ batch: Int, _ index: Int = 0) -> MessageID {
        scenario.batches[batch].ops[index].id
    }

    static func streaming() throws -> MergeScenario {
        var s = MergeScenario(
            "a prompt, a reply streamed in chunks, a title and a read marker", devices: [("A", 1), ("B", 2)])
        let a1 = try s.edit("A", at: 1) { d, r, t in
            [
                try d.createMessage(
                    parent: nil, role: .user, text: "Plan a day in Lisbon", replica: &r, physicalMillis: t)
            ]
        }
        let prompt = first(s, a1)
        try s.deliver([a1], to: "B")
        let b1 = try s.edit("B", at: 2) { d, r, t in
            let reply = try d.createMessage(parent: prompt, role: .assistant, text: "", replica: &r, physicalMillis: t)
            var ops = [reply]
            for chunk in ["Morning: ", "Alfama", " and tram 28. ", "Evening: fado."] {
                ops.append(try d.appendText(chunk, to: reply.id, replica: &r, physicalMillis: t))
            }
            return ops
        }
        try s.deliver([b1], to: "A")
        try s.edit("A", at: 3) { d, r, t in
            let newest = d.activeBranch().last?.created ?? .zero
            return [
                try d.setTitle("Lisbon", replica: &r, physicalMillis: t),
                try d.markRead(upTo: newest, replica: &r, physicalMillis: t),
            ]
        }
        return s
    }

    static func concurrentInserts() throws -> MergeScenario {
        var s = MergeScenario(
            "concurrent inserts at one position never interleave: the smaller replica id goes first",
            devices: [("A", 1), ("B", 2), ("C", 3)])
        let a1 = try s.edit("A", at: 1) { d, r, t in
            [try d.createMessage(parent: nil, role: .user, text: "Hello world", replica: &r, physicalMillis: t)]
        }
        let message = first(s, a1)
        try s.deliver([a1], to: "B")
        try s.deliver([a1], to: "C")
        try s.edit("B", at: 2) { d, r, t in
            [try d.insertText("big ", into: message, at: 6, replica: &r, physicalMillis: t)]
        }
        try s.edit("C", at: 2) { d, r, t in
            [
                try d.insertText("small ", into: message, at: 6, replica: &r, physicalMillis: t),
                try d.insertText("Oh, ", into: message, at: 0, replica: &r, physicalMillis: t),
            ]
        }
        try s.edit("A", at: 3) { d, r, t in [try d.appendText("!", to: message, replica: &r, physicalMillis: t)] }
        try s.edit("B", at: 3) { d, r, t in [try d.appendText("?", to: message, replica: &r, physicalMillis: t)] }
        return s
    }

    static func concurrentDeletes() throws -> MergeScenario {
        var s = MergeScenario(
            "a deletion, an insertion inside the deleted range, and an overlapping deletion",
            devices: [("A", 1), ("B", 2)])
        let a1 = try s.edit("A", at: 1) { d, r, t in
            [try d.createMessage(parent: nil, role: .user, text: "The quick brown fox", replica: &r, physicalMillis: t)]
        }
        let message = first(s, a1)
        try s.deliver([a1], to: "B")
        try s.edit("A", at: 2) { d, r, t in
            [try d.deleteText(in: message, range: 4..<10, replica: &r, physicalMillis: t)]
        }
        try s.edit("B", at: 2) { d, r, t in
            [
                try d.insertText("very ", into: message, at: 4, replica: &r, physicalMillis: t),
                try d.deleteText(in: message, range: 9..<21, replica: &r, physicalMillis: t),
            ]
        }
        return s
    }

    static func branches() throws -> MergeScenario {
        var s = MergeScenario(
            "branches: regenerated replies, an edited prompt, an explicit choice and a deleted branch",
            devices: [("A", 1), ("B", 2)])
        let a1 = try s.edit("A", at: 1) { d, r, t in
            [
                try d.createMessage(
                    parent: nil, role: .user, text: "Write a haiku about rain", replica: &r, physicalMillis: t)
            ]
        }
        let prompt = first(s, a1)
        try s.deliver([a1], to: "B")
        let b1 = try s.edit("B", at: 2) { d, r, t in
            [
                try d.createMessage(
                    parent: prompt, role: .assistant, text: "Grey clouds gather", replica: &r, physicalMillis: t)
            ]
        }
        let reply = first(s, b1)
        try s.deliver([b1], to: "A")
        let a2 = try s.edit("A", at: 3) { d, r, t in
            try d.branch(from: reply, role: .assistant, text: "Drops on the window", replica: &r, physicalMillis: t)
        }
        let b2 = try s.edit("B", at: 4) { d, r, t in
            try d.branch(from: reply, role: .assistant, text: "Puddles hold the sky", replica: &r, physicalMillis: t)
        }
        let third = first(s, b2)
        try s.deliver([a2], to: "B")
        try s.deliver([b2], to: "A")
        let a3 = try s.edit("A", at: 5) { d, r, t in
            try d.branch(from: prompt, role: .user, text: "Write a limerick about rain", replica: &r, physicalMillis: t)
        }
        try s.deliver([a3], to: "B")
        try s.edit("B", at: 6) { d, r, t in
            [
                try d.selectBranch(prompt, replica: &r, physicalMillis: t),
                try d.deleteMessage(third, replica: &r, physicalMillis: t),
            ]
        }
        return s
    }

    static func reactions() throws -> MergeScenario {
        var s = MergeScenario(
            "reactions: an add concurrent with a remove survives it; read markers", devices: [("A", 1), ("B", 2)])
        let thumbs = Reaction(emoji: "👍", reactor: ProtocolVectors.material("crdt/account", 32))
        let heart = Reaction(emoji: "❤️", reactor: ProtocolVectors.material("crdt/account", 32))
        let a1 = try s.edit("A", at: 1) { d, r, t in
            [try d.createMessage(parent: nil, role: .user, text: "Lunch at noon?", replica: &r, physicalMillis: t)]
        }
        let message = first(s, a1)
        try s.deliver([a1], to: "B")
        let b1 = try s.edit("B", at: 2) { d, r, t in
            [try d.addReaction(thumbs, to: message, replica: &r, physicalMillis: t)]
        }
        try s.deliver([b1], to: "A")
        try s.edit("A", at: 3) { d, r, t in
            [
                try d.removeReaction(thumbs, from: message, replica: &r, physicalMillis: t),
                try d.markRead(upTo: d.message(message)?.created ?? .zero, replica: &r, physicalMillis: t),
            ]
        }
        try s.edit("B", at: 3) { d, r, t in
            [
                try d.addReaction(thumbs, to: message, replica: &r, physicalMillis: t),
                try d.addReaction(heart, to: message, replica: &r, physicalMillis: t),
                try d.markRead(upTo: d.message(message)?.created ?? .zero, replica: &r, physicalMillis: t),
            ]
        }
        return s
    }

    static func metadata() throws -> MergeScenario {
        var s = MergeScenario(
            "metadata registers: the last writer wins, equal times go to the greater replica id, unset clears",
            devices: [("A", 1), ("B", 2)])
        let folder = OperationID(replica: CRDTVectors.replica(1), counter: 900)
        try s.edit("A", at: 10) { d, r, t in
            [
                try d.setTitle("Groceries", replica: &r, physicalMillis: t),
                try d.setMetadata(.pinned, to: .flag(true), replica: &r, physicalMillis: t),
            ]
        }
        try s.edit("B", at: 10) { d, r, t in [try d.setTitle("Shopping", replica: &r, physicalMillis: t)] }
        try s.edit("B", at: 11) { d, r, t in
            [
                try d.setMetadata(.custom("emoji"), to: .text("🛒"), replica: &r, physicalMillis: t),
                try d.setMetadata(.custom("draft"), to: .flag(true), replica: &r, physicalMillis: t),
                try d.setMetadata(.archived, to: .flag(true), replica: &r, physicalMillis: t),
            ]
        }
        try s.edit("A", at: 12) { d, r, t in
            [
                try d.setMetadata(.archived, to: .flag(false), replica: &r, physicalMillis: t),
                try d.setMetadata(.model, to: .text("model-x"), replica: &r, physicalMillis: t),
                try d.setFolder(folder, replica: &r, physicalMillis: t),
                try d.setMetadata(.custom("emoji"), to: .unset, replica: &r, physicalMillis: t),
            ]
        }
        return s
    }
}
