import CloakClient
import CloakCRDT
import Foundation

/// The tokens a live operation leaves in what a device renders, and how to find them in a
/// rendered view: a `cloak-canary-RUN-N` string in a message text or a title (appends, streams,
/// branches, edits, renames, new conversations), or `reaction:MESSAGE:EMOJI` for a reaction.
///
/// ```swift
/// let token = RenderTokens.canary(run: "1f", number: 42)         // "cloak-canary-1f-42"
/// RenderTokens.canaries(in: "hi cloak-canary-1f-42 there")     // ["cloak-canary-1f-42"]
/// ```
enum RenderTokens {
    static let prefix = "cloak-canary-"

    /// The canary that marks operation `number` of run `run`.
    static func canary(run: String, number: Int) -> String { "\(prefix)\(run)-\(number)" }

    /// The token of a reaction.
    static func reaction(_ emoji: String, on message: MessageID) -> String { "reaction:\(message):\(emoji)" }

    /// Every canary in `text` (a canary runs from its prefix to the first character that is
    /// not a letter, a digit or a hyphen).
    static func canaries(in text: String) -> [String] {
        var found: [String] = []
        var rest = Substring(text)
        while let range = rest.range(of: prefix) {
            var end = range.upperBound
            while end < rest.endIndex, rest[end].isASCII, rest[end].isLetter || rest[end].isNumber || rest[end] == "-" {
                end = rest.index(after: end)
            }
            found.append(String(rest[range.lowerBound..<end]))
            rest = rest[end...]
        }
        return found
    }

    /// Every token a view shows: canaries in the title and the active branch's texts, and the
    /// reactions on its messages.
    static func tokens(in view: ConversationView) -> Set<String> {
        var tokens = Set(canaries(in: view.metadata.title ?? ""))
        for message in view.messages {
            tokens.formUnion(canaries(in: message.text))
            for reaction in message.reactions { tokens.insert(Self.reaction(reaction.emoji, on: message.id)) }
        }
        return tokens
    }

    /// The canaries in a conversation list's titles (a new conversation shows up there first).
    static func tokens(in summaries: [ConversationSummary]) -> Set<String> {
        Set(summaries.flatMap { canaries(in: $0.title ?? "") })
    }
}
