public import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1

/// A model that answers a context with a stream of text pieces. Its failures are
/// ``ModelFailure``s (content and keys never appear in them).
public protocol ChatModel: Sendable {
    /// Streams the reply to `context`; cancelling the consuming task stops the request.
    func reply(to context: [ChatMessage]) -> AsyncThrowingStream<String, any Error>
}

/// The built-in model for tests and the demo (``ScriptedReply``): word-sized tokens with a
/// pause between them, optionally failing after some tokens or stalling before the first.
public struct ScriptedChatModel: ChatModel {
    /// Pause between tokens.
    public var tokenDelay: Duration
    /// Pause before the first token.
    public var firstTokenDelay: Duration
    /// A fixed reply instead of the default one.
    public var script: String?
    /// Fail with ``ModelFailure/modelError`` after this many tokens.
    public var failAfter: Int?

    /// A scripted model.
    public init(
        tokenDelay: Duration = .milliseconds(15), firstTokenDelay: Duration = .milliseconds(50), script: String? = nil,
        failAfter: Int? = nil
    ) {
        self.tokenDelay = tokenDelay
        self.firstTokenDelay = firstTokenDelay
        self.script = script
        self.failAfter = failAfter
    }

    public func reply(to context: [ChatMessage]) -> AsyncThrowingStream<String, any Error> {
        let tokens = ScriptedReply.tokens(for: context, script: script)
        let (tokenDelay, firstTokenDelay, failAfter) = (tokenDelay, firstTokenDelay, failAfter)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await Task.sleep(for: firstTokenDelay)
                    for (index, token) in tokens.enumerated() {
                        if let failAfter, index >= failAfter { throw ModelFailure.modelError }
                        if index > 0 { try await Task.sleep(for: tokenDelay) }
                        continuation.yield(token)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// A model behind an HTTP endpoint speaking the chat-completions streaming format
/// (``ChatCompletions``) over AsyncHTTPClient: a POST with `"stream": true`, the answer read as
/// server-sent events as it arrives. The key goes only into the `Authorization` header.
public struct HTTPChatModel: ChatModel {
    /// The full URL (for example `https://host/v1/chat/completions`).
    public var endpoint: URL
    /// The model name sent in the request.
    public var model: String
    /// Bearer key, if the endpoint needs one.
    var apiKey: String?
    /// Most tokens asked for.
    public var maxTokens: Int?
    /// Largest answer read, in bytes (a bound against an endpoint that never stops).
    public var maxResponseBytes: Int
    let client: HTTPClient

    /// A model at `endpoint`. `client` defaults to the process-wide shared client.
    public init(
        endpoint: URL, model: String, apiKey: String?, maxTokens: Int? = 2048, maxResponseBytes: Int = 8 << 20,
        client: HTTPClient = .shared
    ) {
        self.endpoint = endpoint
        self.model = model
        self.apiKey = apiKey
        self.maxTokens = maxTokens
        self.maxResponseBytes = maxResponseBytes
        self.client = client
    }

    public func reply(to context: [ChatMessage]) -> AsyncThrowingStream<String, any Error> {
        let model = self
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await model.stream(context) { continuation.yield($0) }
                    continuation.finish()
                } catch let failure as ModelFailure {
                    continuation.finish(throwing: failure)
                } catch is CancellationError {
                    continuation.finish(throwing: CancellationError())
                } catch {
                    // Transport errors may name the host; the failure says only "unreachable".
                    continuation.finish(throwing: ModelFailure.unreachable)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func stream(_ context: [ChatMessage], yield: (String) -> Void) async throws {
        var request = HTTPClientRequest(url: endpoint.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let apiKey, !apiKey.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        request.body = .bytes(ByteBuffer(bytes: try ChatCompletions.requestBody(model: model, messages: context, maxTokens: maxTokens)))
        // The agent's core enforces the first-token, idle and total deadlines by cancelling;
        // this bound only keeps a forgotten request from living for ever.
        let response = try await client.execute(request, timeout: .hours(1))
        guard response.status == .ok else { throw ModelFailure.httpStatus(Int(response.status.code)) }
        var parser = ServerSentEvents()
        var read = 0
        for try await buffer in response.body {
            read += buffer.readableBytes
            guard read <= maxResponseBytes else { throw ModelFailure.malformedStream }
            let events: [String]
            do { events = try parser.feed(buffer.readableBytesView) } catch { throw ModelFailure.malformedStream }
            for data in events {
                switch ChatCompletions.decode(data) {
                case .token(let text): yield(text)
                case .done: return
                case .nothing: continue
                case .error: throw ModelFailure.modelError
                case .malformed: throw ModelFailure.malformedStream
                }
            }
        }
        // The stream ended without [DONE]: what arrived is the answer, unless nothing did.
        for data in (try? parser.finish()) ?? [] {
            if case .token(let text) = ChatCompletions.decode(data) { yield(text) }
        }
    }
}
