public import CloakCRDT
public import CloakProtocol

/// One message of the context a model receives, in the chat-completions roles.
public struct ChatMessage: Sendable, Hashable {
    /// `system`, `user`, `assistant` or `tool`.
    public var role: String
    /// The text.
    public var content: String

    /// A message.
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A conversation as the agent sees it: the active branch, oldest first, and the model it is
/// addressed to (the conversation's `model` metadata, if set).
public struct AgentConversation: Sendable, Hashable {
    /// One message of the active branch.
    public struct Message: Sendable, Hashable {
        /// Its id.
        public var id: MessageID
        /// Who wrote it.
        public var role: MessageRole
        /// Its text.
        public var text: String

        /// A message.
        public init(id: MessageID, role: MessageRole, text: String) {
            self.id = id
            self.role = role
            self.text = text
        }
    }

    /// Its id.
    public var id: ConversationID
    /// The active branch, root first.
    public var messages: [Message]
    /// The conversation's `model` metadata: which assistant it is addressed to (nil: any).
    public var addressedTo: String?

    /// A conversation.
    public init(id: ConversationID, messages: [Message], addressedTo: String?) {
        self.id = id
        self.messages = messages
        self.addressedTo = addressedTo
    }
}

/// Identifies one reply the agent is writing.
public struct ReplyID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// A number, increasing.
    public let value: UInt64

    /// Orders replies by when they started.
    public static func < (lhs: ReplyID, rhs: ReplyID) -> Bool { lhs.value < rhs.value }

    /// `reply-N`.
    public var description: String { "reply-\(value)" }
}

/// Why a model did not finish a reply. Never carries the content or the key.
public enum ModelFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// The endpoint answered with this HTTP status.
    case httpStatus(Int)
    /// The endpoint could not be reached, or the connection broke.
    case unreachable
    /// The stream did not follow the chat-completions format.
    case malformedStream
    /// The model reported an error in its stream.
    case modelError
    /// No first token within the limit.
    case firstTokenTimeout(seconds: UInt64)
    /// No token for this long in the middle of a reply.
    case stalled(seconds: UInt64)
    /// The whole reply took longer than the limit.
    case tooLong(seconds: UInt64)

    /// What went wrong, as a phrase for the sentence written into the conversation.
    public var description: String {
        switch self {
        case .httpStatus(let status): "the model's server answered with HTTP status \(status)"
        case .unreachable: "the model's server could not be reached"
        case .malformedStream: "the model's answer was not in the expected streaming format"
        case .modelError: "the model reported an error"
        case .firstTokenTimeout(let seconds): "the model did not start answering within \(seconds) s"
        case .stalled(let seconds): "the model stopped sending for \(seconds) s"
        case .tooLong(let seconds): "the answer took longer than \(seconds) s"
        }
    }
}

/// How the agent behaves: which conversations it answers, how much context it sends, how long
/// it waits.
public struct AgentConfiguration: Sendable, Hashable {
    /// The assistant's id, as hex: a conversation whose `model` metadata names another value
    /// (not this id, its first 8 characters, nor ``name``) is addressed to someone else.
    public var address: String
    /// Another name conversations may address it by (the `model` metadata).
    public var name: String
    /// Optional system prompt sent first.
    public var systemPrompt: String?
    /// Most messages of the active branch sent as context (the newest ones).
    public var maxContextMessages: Int
    /// Most characters of context (the newest messages that fit; a longer last message is cut).
    public var maxContextCharacters: Int
    /// Longest reply written (the rest is dropped and the reply says so).
    public var maxReplyCharacters: Int
    /// Replies written at once (others wait their turn).
    public var maxConcurrentReplies: Int
    /// Wait this long for the first token.
    public var firstTokenTimeoutMillis: UInt64
    /// Wait this long between tokens.
    public var idleTimeoutMillis: UInt64
    /// A reply may take this long in all.
    public var totalTimeoutMillis: UInt64

    /// Defaults for a chat assistant.
    public init(
        address: String, name: String = "cloak-agent", systemPrompt: String? = nil, maxContextMessages: Int = 40,
        maxContextCharacters: Int = 32_000, maxReplyCharacters: Int = 64_000, maxConcurrentReplies: Int = 4,
        firstTokenTimeoutMillis: UInt64 = 60_000, idleTimeoutMillis: UInt64 = 30_000, totalTimeoutMillis: UInt64 = 600_000
    ) {
        self.address = address
        self.name = name
        self.systemPrompt = systemPrompt
        self.maxContextMessages = maxContextMessages
        self.maxContextCharacters = maxContextCharacters
        self.maxReplyCharacters = maxReplyCharacters
        self.maxConcurrentReplies = maxConcurrentReplies
        self.firstTokenTimeoutMillis = firstTokenTimeoutMillis
        self.idleTimeoutMillis = idleTimeoutMillis
        self.totalTimeoutMillis = totalTimeoutMillis
    }
}

/// What the agent's driver reports to ``AgentCore``.
public enum AgentEvent: Sendable, Hashable {
    /// A conversation of the scope is as given now.
    case conversation(AgentConversation)
    /// The reply's message exists (the driver began it).
    case replyStarted(ReplyID, MessageID)
    /// Writing to the conversation failed (the reason is a sentence without content).
    case writeFailed(ReplyID, String)
    /// The model produced a piece of text.
    case modelToken(ReplyID, String)
    /// The model finished.
    case modelFinished(ReplyID)
    /// The model failed.
    case modelFailed(ReplyID, ModelFailure)
    /// Time passed (deadlines).
    case tick
}

/// What ``AgentCore`` asks its driver to do, in order.
public enum AgentEffect: Sendable, Hashable {
    /// Create an empty assistant message under `parent` (then report ``AgentEvent/replyStarted(_:_:)``).
    case beginReply(ReplyID, ConversationID, parent: MessageID)
    /// Send this context to the model and stream its answer back as events.
    case startModel(ReplyID, [ChatMessage])
    /// Stop the model's request.
    case cancelModel(ReplyID)
    /// Append text to the reply's message.
    case appendText(ReplyID, ConversationID, MessageID, String)
    /// The reply is complete: seal what is still batched.
    case finishReply(ReplyID, ConversationID)
    /// A log line (ids and counts only, never content).
    case log(String)
}
