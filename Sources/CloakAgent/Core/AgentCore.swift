import CloakCRDT
import CloakProtocol

/// The decisions of `cloak-agent`, without I/O (DESIGN.md "Two cores, thin adapters"): it is
/// told what the conversations of its scope look like, what the model streams and what time it
/// is, and answers with effects — begin a reply, send this context to the model, append this
/// text, finish. Its driver (``AgentService``) owns the Cloak client, the model requests and the
/// timers; tests drive this core directly.
///
/// ```swift
/// var core = AgentCore(configuration: .init(address: assistantID.hex))
/// for effect in core.handle(.conversation(snapshot), now: clock.now) { perform(effect) }
/// for effect in core.handle(.modelToken(reply, "Hel"), now: clock.now) { perform(effect) }
/// ```
///
/// Rules: a conversation is answered when its active branch ends in a `user` message (which then
/// has no reply yet: the active branch would continue into one) and it is addressed to this
/// assistant (its `model` metadata is unset, or names this assistant's id, the id's first eight
/// hex digits, or its name). The context is the newest messages of that branch within the
/// configured bounds. A model that fails, stalls or overruns leaves a sentence saying so in the
/// reply, never silence.
public struct AgentCore: Sendable {
    struct Reply: Sendable {
        let conversation: ConversationID
        let parent: MessageID
        let startedAt: UInt64
        var message: MessageID?
        var lastTokenAt: UInt64?
        var characters = 0
        /// Text that arrived before the message existed.
        var buffered = ""
        /// The model is done (or failed): finish once the message exists.
        var ended = false
        var failure: ModelFailure?
    }

    /// The configuration in force.
    public let configuration: AgentConfiguration
    private var replies: [ReplyID: Reply] = [:]
    private var waiting: [(ReplyID, AgentConversation)] = []
    /// User messages answered (or being answered), newest last, bounded.
    private var answered: [MessageID] = []
    private var answeredSet: Set<MessageID> = []
    private var nextReply: UInt64 = 1

    /// User messages remembered as answered (older ones are found answered by the branch).
    static let answeredKept = 10_000

    /// A core with no reply in progress.
    public init(configuration: AgentConfiguration) {
        self.configuration = configuration
    }

    /// Replies in progress (started or waiting).
    public var activeReplies: Int { replies.count + waiting.count }

    /// Handles one event at time `now` (ms) and returns what to do, in order.
    public mutating func handle(_ event: AgentEvent, now: UInt64) -> [AgentEffect] {
        switch event {
        case .conversation(let conversation): return noticed(conversation, now: now)
        case .replyStarted(let id, let message): return started(id, message: message, now: now)
        case .writeFailed(let id, let reason):
            guard replies.removeValue(forKey: id) != nil else { return [] }
            return [.cancelModel(id), .log("\(id): writing the reply failed (\(reason)); the model was stopped")]
                + startWaiting(now: now)
        case .modelToken(let id, let text): return token(id, text, now: now)
        case .modelFinished(let id): return ended(id, failure: nil, now: now)
        case .modelFailed(let id, let failure): return ended(id, failure: failure, now: now)
        case .tick: return expire(now: now)
        }
    }

    // MARK: Noticing questions

    private mutating func noticed(_ conversation: AgentConversation, now: UInt64) -> [AgentEffect] {
        guard let last = conversation.messages.last, last.role == .user, isAddressed(conversation),
            !answeredSet.contains(last.id)
        else { return [] }
        remember(last.id)
        let id = ReplyID(value: nextReply)
        nextReply += 1
        guard replies.count < configuration.maxConcurrentReplies else {
            waiting.append((id, conversation))
            return [.log("\(id): waiting for a free slot (\(replies.count) replies in progress)")]
        }
        return begin(id, conversation, now: now)
    }

    func isAddressed(_ conversation: AgentConversation) -> Bool {
        guard let target = conversation.addressedTo?.lowercased(), !target.isEmpty else { return true }
        let address = configuration.address.lowercased()
        return target == address || target == String(address.prefix(8)) || target == configuration.name.lowercased()
    }

    private mutating func begin(_ id: ReplyID, _ conversation: AgentConversation, now: UInt64) -> [AgentEffect] {
        guard let last = conversation.messages.last else { return [] }
        replies[id] = Reply(conversation: conversation.id, parent: last.id, startedAt: now)
        let context = self.context(of: conversation)
        return [
            .beginReply(id, conversation.id, parent: last.id), .startModel(id, context),
            .log("\(id): answering in conversation \(conversation.id) with \(context.count) context messages"),
        ]
    }

    /// The newest messages of the branch within the bounds, oldest first, after the system
    /// prompt. The newest message always goes (cut to the character bound if it must be).
    func context(of conversation: AgentConversation) -> [ChatMessage] {
        var budget = configuration.maxContextCharacters - (configuration.systemPrompt?.count ?? 0)
        var picked: [ChatMessage] = []
        for message in conversation.messages.reversed() where !message.text.isEmpty || message.role == .user {
            guard picked.count < configuration.maxContextMessages else { break }
            let count = message.text.count
            if count > budget {
                if picked.isEmpty { picked.append(ChatMessage(role: "user", content: String(message.text.prefix(max(0, budget))))) }
                break
            }
            budget -= count
            picked.append(ChatMessage(role: Self.role(message.role), content: message.text))
        }
        let system = configuration.systemPrompt.map { [ChatMessage(role: "system", content: $0)] } ?? []
        return system + picked.reversed()
    }

    static func role(_ role: MessageRole) -> String {
        switch role {
        case .user: "user"
        case .assistant: "assistant"
        case .system: "system"
        case .tool: "tool"
        }
    }

    private mutating func remember(_ message: MessageID) {
        answered.append(message)
        answeredSet.insert(message)
        if answered.count > Self.answeredKept {
            answeredSet.remove(answered.removeFirst())
        }
    }

    // MARK: Streaming

    private mutating func started(_ id: ReplyID, message: MessageID, now: UInt64) -> [AgentEffect] {
        guard var reply = replies[id] else { return [] }
        reply.message = message
        var effects: [AgentEffect] = []
        if !reply.buffered.isEmpty {
            effects.append(.appendText(id, reply.conversation, message, reply.buffered))
            reply.buffered = ""
        }
        replies[id] = reply
        if reply.ended { effects += finish(id, now: now) }
        return effects
    }

    private mutating func token(_ id: ReplyID, _ text: String, now: UInt64) -> [AgentEffect] {
        guard var reply = replies[id], !reply.ended, !text.isEmpty else { return [] }
        reply.lastTokenAt = now
        var piece = text
        var cut = false
        if reply.characters + piece.count > configuration.maxReplyCharacters {
            piece = String(piece.prefix(max(0, configuration.maxReplyCharacters - reply.characters)))
            piece += "\n\n[The reply was cut at \(configuration.maxReplyCharacters) characters.]"
            cut = true
        }
        reply.characters += piece.count
        var effects: [AgentEffect] = []
        if let message = reply.message {
            effects.append(.appendText(id, reply.conversation, message, piece))
        } else {
            reply.buffered += piece
        }
        replies[id] = reply
        if cut {
            effects.append(.cancelModel(id))
            effects += ended(id, failure: nil, now: now)
        }
        return effects
    }

    private mutating func ended(_ id: ReplyID, failure: ModelFailure?, now: UInt64) -> [AgentEffect] {
        guard var reply = replies[id], !reply.ended else { return [] }
        reply.ended = true
        reply.failure = failure
        if let failure {
            let sentence =
                reply.characters == 0
                ? "⚠️ No answer: \(failure). Send your message again to try once more."
                : "\n\n⚠️ The answer stopped: \(failure)."
            if reply.message == nil { reply.buffered += sentence }
            replies[id] = reply
            var effects: [AgentEffect] = [.log("\(id): the model failed (\(failure))")]
            if let message = reply.message { effects.append(.appendText(id, reply.conversation, message, sentence)) }
            return effects + (reply.message == nil ? [] : finish(id, now: now))
        }
        replies[id] = reply
        return reply.message == nil ? [] : finish(id, now: now)
    }

    private mutating func finish(_ id: ReplyID, now: UInt64) -> [AgentEffect] {
        guard let reply = replies.removeValue(forKey: id) else { return [] }
        let outcome = reply.failure == nil ? "done" : "ended with an error"
        return [
            .finishReply(id, reply.conversation),
            .log("\(id): \(outcome), \(reply.characters) characters in \(now - reply.startedAt) ms"),
        ] + startWaiting(now: now)
    }

    private mutating func startWaiting(now: UInt64) -> [AgentEffect] {
        var effects: [AgentEffect] = []
        while replies.count < configuration.maxConcurrentReplies, !waiting.isEmpty {
            let (id, conversation) = waiting.removeFirst()
            effects += begin(id, conversation, now: now)
        }
        return effects
    }

    // MARK: Deadlines

    /// When the next deadline falls (the driver ticks then), if a reply is in progress.
    public var nextDeadline: UInt64? {
        replies.values.filter { !$0.ended }.map(deadline).min()
    }

    private func deadline(_ reply: Reply) -> UInt64 {
        let total = reply.startedAt + configuration.totalTimeoutMillis
        guard let last = reply.lastTokenAt else { return min(total, reply.startedAt + configuration.firstTokenTimeoutMillis) }
        return min(total, last + configuration.idleTimeoutMillis)
    }

    private mutating func expire(now: UInt64) -> [AgentEffect] {
        var effects: [AgentEffect] = []
        for (id, reply) in replies.sorted(by: { $0.key < $1.key }) where !reply.ended && deadline(reply) <= now {
            let failure: ModelFailure =
                if now >= reply.startedAt + configuration.totalTimeoutMillis {
                    .tooLong(seconds: configuration.totalTimeoutMillis / 1000)
                } else if reply.lastTokenAt == nil {
                    .firstTokenTimeout(seconds: configuration.firstTokenTimeoutMillis / 1000)
                } else {
                    .stalled(seconds: configuration.idleTimeoutMillis / 1000)
                }
            effects.append(.cancelModel(id))
            effects += ended(id, failure: failure, now: now)
        }
        return effects
    }
}
