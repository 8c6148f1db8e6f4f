import Foundation

/// The widely used chat-completions streaming format (a POST of the model, the messages and
/// `"stream": true`; an answer of server-sent events whose data is a JSON chunk with
/// `choices[0].delta.content`, ending with `data: [DONE]`), without I/O.
///
/// ```swift
/// let body = try ChatCompletions.requestBody(model: "small", messages: context, maxTokens: 1024)
/// switch ChatCompletions.decode(eventData) { case .token(let text): … case .done: … }
/// ```
public enum ChatCompletions {
    /// What one event of the stream says.
    public enum Chunk: Sendable, Equatable {
        /// A piece of the reply.
        case token(String)
        /// The stream is over (`[DONE]`, or a chunk with a finish reason and no text).
        case done
        /// Nothing for the reply (a role announcement, an empty delta, keep-alive).
        case nothing
        /// The model reported an error.
        case error
        /// Not a chat-completions chunk.
        case malformed
    }

    /// The JSON request body.
    public static func requestBody(model: String, messages: [ChatMessage], maxTokens: Int?) throws -> [UInt8] {
        var object: [String: Any] = [
            "model": model, "stream": true,
            "messages": messages.map { ["role": $0.role, "content": $0.content] },
        ]
        if let maxTokens { object["max_tokens"] = maxTokens }
        return Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    /// Decodes one event's data.
    public static func decode(_ data: String) -> Chunk {
        let trimmed = data.trimmingCharacters(in: .whitespaces)
        if trimmed == "[DONE]" { return .done }
        guard let json = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
            return .malformed
        }
        if json["error"] != nil { return .error }
        guard let choices = json["choices"] as? [[String: Any]] else { return .malformed }
        guard let first = choices.first else { return .nothing }
        if let delta = first["delta"] as? [String: Any], let content = delta["content"] as? String, !content.isEmpty {
            return .token(content)
        }
        if let reason = first["finish_reason"] as? String, !reason.isEmpty { return .done }
        return .nothing
    }
}

/// The built-in model for tests and the demo: a fixed answer to the newest question, in
/// word-sized tokens.
public enum ScriptedReply {
    /// The tokens of the reply to `context` (the newest `user` message is quoted back, cut).
    public static func tokens(for context: [ChatMessage], script: String? = nil) -> [String] {
        let question = context.last { $0.role == "user" }?.content ?? ""
        let quoted = question.count > 80 ? String(question.prefix(77)) + "…" : question
        let text = script ?? "This is cloak-agent's scripted model. You asked: “\(quoted)”. "
            + "A real model would answer here; this reply was streamed token by token into your conversation, "
            + "end-to-end encrypted, and the sync server saw none of it."
        var tokens: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if character == " " {
                tokens.append(current)
                current = ""
            }
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }
}
