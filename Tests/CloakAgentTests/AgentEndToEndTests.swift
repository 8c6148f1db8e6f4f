import CloakAgent
import CloakCRDT
import CloakClient
import CloakProtocol
import CloakServer
import CloakServerHTTP
import CloakTesting
import CloakTransport
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing

/// Keeps every log line (message and metadata) so a test can scan them for content.
struct CollectingLogHandler: LogHandler {
    let sink: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let line = "\(event.level) \(event.message) \(event.metadata ?? [:])"
        sink.lines.withLock { $0.append(line) }
    }
}

final class LogLines: Sendable {
    let lines = Mutex<[String]>([])
    var all: String { lines.withLock { $0.joined(separator: "\n") } }
    var logger: Logger {
        Logger(label: "agent") { _ in CollectingLogHandler(sink: self) }
    }
}

/// `cloak-agent`'s service against a real server on loopback (the scripted model), and the
/// HTTP model against a local fake chat-completions endpoint.
@Suite(.serialized) struct AgentEndToEndTests {
    static let quiet: Logger = {
        var logger = Logger(label: "agent-tests")
        logger.logLevel = .critical
        return logger
    }()

    func withServer<T: Sendable>(_ body: @Sendable (RunningServer) async throws -> T) async throws -> T {
        try await CloakHTTPServer.withRunning(
            configuration: .init(port: 0), store: InMemoryServerStore(), logger: Self.quiet, body)
    }

    func openClient(_ directory: URL, _ server: RunningServer) throws -> CloakClient {
        var configuration = ClientConfiguration()
        configuration.reconnectMinMillis = 50
        configuration.reconnectMaxMillis = 500
        configuration.streamBatchMillis = 20
        return try CloakClient.open(
            directory: directory, server: URL(string: server.syncURL)!, transport: WebSocketTransport(),
            configuration: configuration, logger: Self.quiet)
    }

    func eventually(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("timed out waiting for: \(what)")
        throw CancellationError()
    }

    /// Two devices of a new account, linked and syncing.
    func linkedPair(_ root: URL, _ server: RunningServer) async throws -> (CloakClient, CloakClient) {
        let a = try openClient(root.appendingPathComponent("a"), server)
        let b = try openClient(root.appendingPathComponent("b"), server)
        try await a.createAccount()
        let invitation = try await b.beginLink()
        async let pending = b.awaitLink(invitation, pollMillis: 50)
        let offer = try await a.acceptLink(invitation.text)
        let link = try await pending
        #expect(link.shortAuthenticationString == offer.shortAuthenticationString)
        // Both people compared the codes and said yes; only then does A commit the new device.
        async let joined: Void = b.confirmLink(link, codesMatch: true, pollMillis: 50)
        try await a.completeLink(offer, codesMatch: true, pollMillis: 50)
        try await joined
        await a.startSync()
        await b.startSync()
        return (a, b)
    }

    @Test("ADV-49 cloak-agent streams a scripted reply every device renders; nothing outside its scope reaches it")
    func scriptedReplyEndToEnd() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-agent-e2e-\(UInt64.random(in: 0..<UInt64.max))")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let (a, b) = try await linkedPair(root, server)
            let chat = try await a.createConversation(title: "ask")
            let secret = try await a.createConversation(title: "private")
            try await a.appendMessage(to: secret, role: .user, text: "cloak-canary-not-for-the-agent")
            let agent = try openClient(root.appendingPathComponent("agent"), server)
            let agentInvitation = await agent.assistantInvitation()
            let grantStarted = ContinuousClock.now
            let granted = try await a.grantAssistant(
                agentInvitation.text, conversations: [chat], expires: Date().addingTimeInterval(3600))
            let grantTook = ContinuousClock.now - grantStarted
            #expect(granted.id == agentInvitation.id && granted.canRead)
            let model = ScriptedChatModel(
                tokenDelay: .milliseconds(5), firstTokenDelay: .milliseconds(5), script: "cloak-canary-answer stays private.")
            let logs = LogLines()
            let service = AgentService(
                client: agent, model: model, configuration: AgentConfiguration(address: agentInvitation.id.hex),
                logger: logs.logger)
            let account = try #require(await a.accountID)
            let running = Task { try await service.run(account: account, retry: .milliseconds(100)) }
            // The agent has joined once it reads the conversation: from then on, time the reply.
            try await eventually("the agent joined") { await agent.knownConversations() == [chat] }
            let clock = ContinuousClock()
            let asked = clock.now
            try await a.appendMessage(to: chat, role: .user, text: "cloak-canary-question")
            try await eventually("the other device shows the reply's first token") {
                await b.conversation(chat)?.messages.last.map { $0.role == .assistant && !$0.text.isEmpty } ?? false
            }
            let firstToken = clock.now - asked
            TestData.report("cloak-agent first token on another device: \(firstToken) after the question (the model's own: 5 ms)")
            try await eventually("both devices render the streamed reply") {
                for device in [a, b] {
                    let texts = await device.conversation(chat)?.messages.map(\.text) ?? []
                    if texts != ["cloak-canary-question", "cloak-canary-answer stays private."] { return false }
                }
                return true
            }
            let reply = try #require(await b.conversation(chat)?.messages.last)
            #expect(reply.role == .assistant)
            #expect(await b.conversation(chat)?.assistants.map(\.id) == [agentInvitation.id])
            #expect(await agent.knownConversations() == [chat])
            #expect(await agent.allMessageTexts(secret).isEmpty)
            #expect(await service.firstTokenMillis.count == 1)
            // Revoked: the agent's access ends, and it reads nothing written afterwards.
            let revokeStarted = ContinuousClock.now
            try await a.revokeAssistant(agentInvitation.id)
            TestData.report("grant took \(grantTook), revoke \(ContinuousClock.now - revokeStarted) (loopback server)")
            try await a.appendMessage(to: chat, role: .user, text: "cloak-canary-after-revoke")
            try await eventually("the agent sees its revocation") { await agent.assistantGrant?.isActive == false }
            #expect(await !agent.allMessageTexts(chat).contains("cloak-canary-after-revoke"))
            running.cancel()
            _ = try? await running.value
            #expect(logs.all.contains("answering"), "the service logs what it does")
            #expect(!logs.all.contains("cloak-canary"), "but never the conversation's content")
            for client in [agent, a, b] { try await client.close() }
        }
    }

    // MARK: The HTTP model

    /// A fake chat-completions endpoint: the request's `model` picks the behaviour.
    func withFakeModel<T: Sendable>(_ body: @Sendable (URL) async throws -> T) async throws -> T {
        let router = Router()
        router.post("v1/chat/completions") { request, _ -> Response in
            guard request.headers[.authorization] == "Bearer test-key" else { return Response(status: .unauthorized) }
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let json = try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any]
            let messages = json?["messages"] as? [[String: Any]] ?? []
            let model = json?["model"] as? String ?? ""
            let behaviour = model == "by-question" ? messages.last?["content"] as? String ?? "" : model
            if behaviour == "status500" { return Response(status: .internalServerError) }
            let events: [String] =
                switch behaviour {
                case "error": [#"{"choices":[{"delta":{"content":"Hal"}}]}"#, #"{"error":{"message":"overloaded"}}"#]
                default: [
                    #"{"choices":[{"delta":{"role":"assistant"}}]}"#, #"{"choices":[{"delta":{"content":"Hel"}}]}"#,
                    #"{"choices":[{"delta":{"content":"lo"}}]}"#, "[DONE]",
                ]
                }
            return Response(
                status: .ok, headers: [.contentType: "text/event-stream"],
                body: ResponseBody { writer in
                    if behaviour == "slow" {
                        // One token, then silence longer than the agent's idle timeout.
                        try await writer.write(ByteBuffer(string: #"data: {"choices":[{"delta":{"content":"Sl"}}]}\#n\#n"#))
                        try await Task.sleep(for: .seconds(5))
                    }
                    for event in events { try await writer.write(ByteBuffer(string: "data: \(event)\r\n\r\n")) }
                    try await writer.finish(nil)
                })
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: Self.quiet)
        let running = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { running.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        return try await body(URL(string: "http://127.0.0.1:\(port)/v1/chat/completions")!)
    }

    func collect(_ model: HTTPChatModel) async -> (text: String, failure: ModelFailure?) {
        var text = ""
        do {
            for try await token in model.reply(to: [ChatMessage(role: "user", content: "cloak-canary-question")]) {
                text += token
            }
            return (text, nil)
        } catch {
            return (text, error as? ModelFailure)
        }
    }

    @Test("the HTTP model reads chat-completions server-sent events; a model error and an HTTP error are failures")
    func httpModel() async throws {
        try await withFakeModel { url in
            let ok = await collect(HTTPChatModel(endpoint: url, model: "ok", apiKey: "test-key"))
            #expect(ok.text == "Hello" && ok.failure == nil)
            let failing = await collect(HTTPChatModel(endpoint: url, model: "error", apiKey: "test-key"))
            #expect(failing.text == "Hal" && failing.failure == .modelError)
            let status = await collect(HTTPChatModel(endpoint: url, model: "status500", apiKey: "test-key"))
            #expect(status.failure == .httpStatus(500))
            let unauthorized = await collect(HTTPChatModel(endpoint: url, model: "ok", apiKey: "wrong"))
            #expect(unauthorized.failure == .httpStatus(401))
        }
    }

    @Test("cloak-agent with the HTTP model: a streamed answer, a model error and a stalled stream all end in the conversation")
    func httpModelEndToEnd() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-agent-http-\(UInt64.random(in: 0..<UInt64.max))")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withFakeModel { url in
            try await withServer { server in
                let (a, b) = try await linkedPair(root, server)
                let chat = try await a.createConversation(title: "http")
                let agent = try openClient(root.appendingPathComponent("agent"), server)
                let invitation = await agent.assistantInvitation()
                try await a.grantAssistant(invitation, conversations: [chat], expires: Date().addingTimeInterval(3600))
                var configuration = AgentConfiguration(address: invitation.id.hex)
                configuration.idleTimeoutMillis = 1_000
                let service = AgentService(
                    client: agent, model: HTTPChatModel(endpoint: url, model: "by-question", apiKey: "test-key"),
                    configuration: configuration, logger: Self.quiet)
                let account = try #require(await a.accountID)
                let running = Task { try await service.run(account: account, retry: .milliseconds(100)) }
                var expected: [String] = []
                for (question, answer) in [
                    ("ok", "Hello"), ("error", "Hal\n\n⚠️ The answer stopped: the model reported an error."),
                    ("slow", "Sl\n\n⚠️ The answer stopped: the model stopped sending for 1 s."),
                ] {
                    try await a.appendMessage(to: chat, role: .user, text: question)
                    expected += [question, answer]
                    let want = expected
                    try await eventually("both devices render the answer to \(question)") {
                        for device in [a, b] where await device.conversation(chat)?.messages.map(\.text) != want {
                            return false
                        }
                        return true
                    }
                }
                running.cancel()
                _ = try? await running.value
                for client in [agent, a, b] { try await client.close() }
            }
        }
    }

    @Test("ADV-49 a revocation reaches the account's connected devices and the assistant at once, with nothing else written")
    func revocationReachesConnectedDevices() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-agent-revoke-\(UInt64.random(in: 0..<UInt64.max))")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let (a, b) = try await linkedPair(root, server)
            let chat = try await a.createConversation(title: "revoked")
            let agent = try openClient(root.appendingPathComponent("agent"), server)
            let invitation = await agent.assistantInvitation()
            try await a.grantAssistant(invitation, conversations: [chat], expires: Date().addingTimeInterval(3600))
            try await agent.joinAsAssistant(account: try #require(await a.accountID))
            await agent.startSync()
            try await eventually("the other device and the assistant see the grant") {
                let (readable, known) = (try await b.assistants().first?.canRead, await agent.knownConversations())
                return readable == true && known == [chat]
            }
            // No change set follows the revocation: the server's notice that the device log grew
            // is what makes the others fetch and verify it.
            let clock = ContinuousClock()
            let revoked = clock.now
            try await a.revokeAssistant(invitation.id)
            try await eventually("the connected device sees the revocation", timeout: .seconds(5)) {
                try await b.assistants().first?.isActive == false
            }
            TestData.report("a revocation reached the other connected device \(clock.now - revoked) after it was made")
            #expect(await b.conversation(chat)?.assistants.isEmpty == true)
            try await eventually("the assistant sees its revocation", timeout: .seconds(5)) {
                await agent.assistantGrant?.isActive == false
            }
            for client in [agent, a, b] { try await client.close() }
        }
    }

    @Test("ADV-49 a device that sees an assistant's expiry pass ends its access with a signed entry that rotates the keys")
    func expiryEndsAccess() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-agent-expiry-\(UInt64.random(in: 0..<UInt64.max))")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let (a, b) = try await linkedPair(root, server)
            let chat = try await a.createConversation(title: "short-lived")
            let agent = try openClient(root.appendingPathComponent("agent"), server)
            let invitation = await agent.assistantInvitation()
            try await a.grantAssistant(invitation, conversations: [chat], expires: Date().addingTimeInterval(1.5))
            try await eventually("a device ends the expired grant") {
                try await a.assistants().first?.endReason == .expired
            }
            // The other device learns of the entry from the server's notice that the log grew
            // (revocationReachesConnectedDevices), or else from the next change set that names it.
            try await a.appendMessage(to: chat, role: .user, text: "after expiry")
            try await eventually("every device sees it ended") { try await b.assistants().first?.isActive == false }
            #expect(await b.conversation(chat)?.assistants.isEmpty == true)
            for client in [agent, a, b] { try await client.close() }
        }
    }
}
