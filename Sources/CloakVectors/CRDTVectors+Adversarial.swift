import CloakCRDT

/// The merge situations a misbehaving member creates (ADV-47) and the library's.
extension MergeScenarios {
    static func reuse() throws -> MergeScenario {
        var s = MergeScenario(
            "ADV-47: E reuses operation ids with other content; every device rejects the reuses",
            devices: [("H", 1), ("E", 14)])
        let h1 = try s.edit("H", at: 1) { d, r, t in
            [try d.createMessage(parent: nil, role: .user, text: "", replica: &r, physicalMillis: t)]
        }
        let message = first(s, h1)
        try s.deliver([h1], to: "E")
        let e1 = try s.edit("E", at: 2) { d, r, t in
            [
                try d.appendText("AAAA", to: message, replica: &r, physicalMillis: t),
                try d.setTitle("ok", replica: &r, physicalMillis: t),
            ]
        }
        let insert = s.batches[e1].ops[0]
        let title = s.batches[e1].ops[1]
        s.forge(
            "E",
            [
                CRDTOperation(
                    id: insert.id, timestamp: insert.timestamp,
                    payload: .insertText(message: message, after: nil, before: nil, text: "BBBBBBBB")),
                CRDTOperation(
                    id: insert.id, timestamp: insert.timestamp,
                    payload: .insertText(message: message, after: nil, before: nil, text: "AAAB")),
                CRDTOperation(id: title.id, timestamp: title.timestamp, payload: .setMetadata(.title, .text("forged"))),
            ])
        try s.deliver([e1], to: "H")
        try s.edit("H", at: 3) { d, r, t in [try d.appendText("!", to: message, replica: &r, physicalMillis: t)] }
        return s
    }

    static func farFuture() throws -> MergeScenario {
        var s = MergeScenario(
            "ADV-28: X stamps writes ten years ahead; they are deferred, its text edit is not",
            devices: [("A", 1), ("X", 15)])
        let a1 = try s.edit("A", at: 1) { d, r, t in
            [
                try d.createMessage(parent: nil, role: .user, text: "hello", replica: &r, physicalMillis: t),
                try d.setTitle("Real", replica: &r, physicalMillis: t),
            ]
        }
        let message = first(s, a1)
        try s.deliver([a1], to: "X")
        let tenYears: UInt64 = 10 * 365 * 24 * 3_600
        try s.edit("X", at: tenYears) { d, r, t in
            [
                try d.setTitle("Hijacked", replica: &r, physicalMillis: t),
                try d.createMessage(parent: nil, role: .user, text: "from the future", replica: &r, physicalMillis: t),
                try d.appendText("!", to: message, replica: &r, physicalMillis: t),
            ]
        }
        return s
    }

    static func library() throws -> MergeScenario {
        var s = MergeScenario(
            "the account library: a restore beats a concurrent purge; folders; settings", .library,
            devices: [("A", 1), ("B", 2)])
        let first = try Self.key(0xA1)
        let second = try Self.key(0xA2)
        let a1 = try s.editLibrary("A", at: 1) { l, r, t in
            [
                try l.addConversation(first, replica: &r, physicalMillis: t),
                try l.addConversation(second, replica: &r, physicalMillis: t),
                try l.createFolder(name: "Work", replica: &r, physicalMillis: t),
                try l.setSetting("theme", to: .text("dark"), replica: &r, physicalMillis: t),
            ]
        }
        let work = s.batches[a1].ops[2].id
        try s.deliver([a1], to: "B")
        let b1 = try s.editLibrary("B", at: 2) { l, r, t in
            try l.setState(.trashed, of: first, replica: &r, physicalMillis: t) + [
                try l.renameFolder(work, to: "Projects", replica: &r, physicalMillis: t),
                try l.setSetting("theme", to: .text("light"), replica: &r, physicalMillis: t),
            ]
        }
        try s.deliver([b1], to: "A")
        try s.editLibrary("A", at: 3) { l, r, t in [try l.purgeConversation(first, replica: &r, physicalMillis: t)] }
        try s.editLibrary("B", at: 4) { l, r, t in try l.setState(.active, of: first, replica: &r, physicalMillis: t) }
        try s.editLibrary("A", at: 5) { l, r, t in
            try l.setState(.archived, of: second, replica: &r, physicalMillis: t) + [
                try l.createFolder(name: "Home", replica: &r, physicalMillis: t),
                try l.deleteFolder(work, replica: &r, physicalMillis: t),
            ]
        }
        return s
    }

    static func key(_ byte: UInt8) throws -> ConversationKey {
        guard let key = ConversationKey(bytes: [UInt8](repeating: byte, count: 16)) else {
            throw VectorGenerationError("conversation key")
        }
        return key
    }
}
