import CloakAgent
import CloakCRDT
import CloakCrypto
import CloakProtocol
import Testing

/// The agent's decisions without I/O: when it answers, what context it sends, how a failing or
/// stalled model ends a reply (always with a sentence in the conversation, never silence).
struct AgentCoreTests {
    let chat = ConversationID(unchecked: [UInt8](repeating: 7, count: 16))

    func message(_ n: UInt64, _ role: MessageRole, _ text: String) -> AgentConversation.Message {
        .init(id: MessageID(replica: ReplicaID(high: 1, low: 1), counter: n), role: role, text: text)
    }

    func appended(_ effects: [AgentEffect]) -> String {
        effects.reduce(into: "") { text, effect in
            if case .appendText(_, _, _, let piece) = effect { text += piece }
        }
    }

    @Test func answersANewUserMessageOnceWithBoundedContext() throws {
        var configuration = AgentConfiguration(address: "abcdef0123456789", systemPrompt: "Be brief.")
        configuration.maxContextMessages = 2
        var core = AgentCore(configuration: configuration)
        let conversation = AgentConversation(
            id: chat, messages: [message(1, .user, "first"), message(2, .assistant, "reply"), message(3, .user, "second")],
            addressedTo: nil)
        let effects = core.handle(.conversation(conversation), now: 0)
        let context = effects.compactMap { effect -> [ChatMessage]? in
            if case .startModel(_, let context) = effect { return context }
            return nil
        }
        #expect(context == [[
            ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "assistant", content: "reply"),
            ChatMessage(role: "user", content: "second"),
        ]])
        #expect(core.handle(.conversation(conversation), now: 1).isEmpty, "the same question is answered once")
        let other = AgentConversation(id: chat, messages: [message(4, .user, "hi")], addressedTo: "someone-else")
        #expect(core.handle(.conversation(other), now: 2).isEmpty, "addressed to another assistant")
    }

    @Test func aFailingModelLeavesASentenceInTheReply() throws {
        var core = AgentCore(configuration: AgentConfiguration(address: "abcdef"))
        let effects = core.handle(.conversation(.init(id: chat, messages: [message(1, .user, "q")], addressedTo: nil)), now: 0)
        guard case .beginReply(let reply, _, _)? = effects.first else {
            Issue.record("no reply began")
            return
        }
        let replyMessage = MessageID(replica: ReplicaID(high: 2, low: 2), counter: 1)
        var written = core.handle(.modelToken(reply, "Partial "), now: 5)
        written += core.handle(.replyStarted(reply, replyMessage), now: 6)
        written += core.handle(.modelFailed(reply, .httpStatus(500)), now: 7)
        #expect(appended(written).hasPrefix("Partial "))
        #expect(appended(written).contains("The answer stopped: the model's server answered with HTTP status 500"))
        #expect(written.contains { if case .finishReply = $0 { true } else { false } })
        #expect(core.activeReplies == 0)
    }

    @Test func aModelThatNeverStartsOrStallsTimesOut() throws {
        var configuration = AgentConfiguration(address: "abcdef")
        configuration.firstTokenTimeoutMillis = 1_000
        configuration.idleTimeoutMillis = 500
        var core = AgentCore(configuration: configuration)
        let effects = core.handle(.conversation(.init(id: chat, messages: [message(1, .user, "q")], addressedTo: nil)), now: 0)
        guard case .beginReply(let reply, _, _)? = effects.first else {
            Issue.record("no reply began")
            return
        }
        let replyMessage = MessageID(replica: ReplicaID(high: 2, low: 2), counter: 1)
        _ = core.handle(.replyStarted(reply, replyMessage), now: 1)
        #expect(core.nextDeadline == 1_000)
        #expect(core.handle(.tick, now: 999).isEmpty)
        let timedOut = core.handle(.tick, now: 1_000)
        #expect(timedOut.contains(.cancelModel(reply)))
        #expect(appended(timedOut).contains("did not start answering within 1 s"))
        #expect(core.handle(.modelToken(reply, "late"), now: 1_001).isEmpty, "a cancelled reply takes no more text")
    }
}
