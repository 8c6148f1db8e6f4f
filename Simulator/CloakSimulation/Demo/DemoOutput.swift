import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol

/// Collects the demo's printed lines.
struct DemoOutput {
    private(set) var text = ""

    mutating func line(_ string: String) {
        text += string + "\n"
    }

    /// One device's view: every conversation's active branch, then where every other branch
    /// went (concurrent and offline writes fork the message tree: the active branch shows one
    /// side, and nothing else is lost), then a hash of all its state.
    mutating func render(_ name: String, _ device: CloakClient, authors: [ReplicaID: String]) async {
        line("")
        line("── \(name) ──")
        for summary in await device.conversations() {
            let tree = await device.messageTree(summary.id)
            let active = await device.conversation(summary.id)?.messages ?? []
            let branches = Set(tree.map(\.id)).subtracting(tree.compactMap(\.parent)).count
            line("  \(summary.pinned ? "📌 " : "")\(summary.title ?? "(untitled)")  (\(summary.messageCount) messages "
                 + "in \(branches) \(branches == 1 ? "branch" : "branches"); by \(Self.tally(tree, authors)))")
            line("    active branch, \(active.count) messages:")
            for message in active {
                let text = message.text.count > 90 ? String(message.text.prefix(87)) + "…" : message.text
                let reactions = message.reactions.map(\.emoji).joined()
                let branch = message.siblingCount > 1 ? " [branch \(message.siblingIndex + 1)/\(message.siblingCount)]" : ""
                line("      \(message.role): \(text)\(reactions.isEmpty ? "" : " \(reactions)")\(branch)")
            }
            for fork in Self.offBranches(tree, active: active) {
                let first = fork.first.text.count > 40 ? String(fork.first.text.prefix(37)) + "…" : fork.first.text
                let place = fork.after == 0 ? "another first message" : "other branch after active message \(fork.after)"
                line("    \(place): \(fork.messages.count) messages "
                     + "(by \(Self.tally(fork.messages, authors))), from \"\(first)\"")
            }
        }
        var combined: [UInt8] = await device.stateHash(of: .library) ?? []
        for summary in await device.conversations().sorted(by: { $0.id < $1.id }) {
            combined += await device.stateHash(of: summary.id) ?? []
        }
        line("  state hash (all conversations): \(Hex.encode(BLAKE2b.hash(combined, outputByteCount: 16)))")
    }

    /// A subtree off the active branch: the position on the active branch it forks after (0:
    /// a root of its own), its first message, and every message in it.
    struct OffBranch {
        let after: Int
        let first: RenderedMessage
        let messages: [RenderedMessage]
    }

    /// The subtrees hanging off the active branch, in tree order.
    static func offBranches(_ tree: [RenderedMessage], active: [RenderedMessage]) -> [OffBranch] {
        let position = Dictionary(uniqueKeysWithValues: active.enumerated().map { ($1.id, $0 + 1) })
        var children: [MessageID?: [RenderedMessage]] = [:]
        for message in tree { children[message.parent, default: []].append(message) }
        var result: [OffBranch] = []
        for message in tree where position[message.id] == nil {
            var after = 0
            if let parent = message.parent {
                guard let onActive = position[parent] else { continue }  // inside another off-branch: counted there
                after = onActive
            }
            var messages: [RenderedMessage] = []
            var stack = [message]
            while let next = stack.popLast() {
                messages.append(next)
                stack += children[next.id] ?? []
            }
            result.append(OffBranch(after: after, first: message, messages: messages))
        }
        return result
    }

    /// "phone 7, laptop 15, tablet 25": messages per device.
    static func tally(_ messages: [RenderedMessage], _ authors: [ReplicaID: String]) -> String {
        var counts: [String: Int] = [:]
        for message in messages { counts[authors[message.author] ?? "another device", default: 0] += 1 }
        return counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}
