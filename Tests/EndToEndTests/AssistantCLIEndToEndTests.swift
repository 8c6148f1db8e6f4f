import CloakClient
import CloakCrypto
import CloakProtocol
import CloakServer
import CloakServerHTTP
import CloakTesting
import Foundation
import Testing

/// `cloak assistant grant|list|restrict` through the real executable, with an assistant's
/// client in the test process (PROTOCOL.md §29): after a restriction the assistant keeps its
/// other conversations and reads nothing written afterwards in the one taken away.
@Suite("cloak CLI: assistants", .serialized, .timeLimit(.minutes(4)))
struct AssistantCLIEndToEndTests {
    /// The conversation id `cloak send --new` printed ("sent to <hex>").
    static func conversation(_ result: CLIResult) throws -> ConversationID {
        let hex = try #require(result.output.split(separator: "\n").last { $0.hasPrefix("sent to ") }?.dropFirst(8))
        return try ConversationID(validating: Hex.decode(String(hex)), field: "conversation")
    }

    @Test("ADV-08 after `cloak assistant restrict` the assistant keeps its other conversation and reads nothing new in the removed one")
    func restrictThroughTheCLI() async throws {
        let root = try temporaryDirectory("cli-assistant")
        defer { try? FileManager.default.removeItem(at: root) }
        let a = ["--dir", root.appendingPathComponent("a").path]
        try await withServer(store: InMemoryServerStore()) { server in
            let at = ["--server", server.syncURL, "--timeout", "10"]
            let created = try await runCloak(["init"] + a + at)
            #expect(created.status == 0, "\(created)")
            let accountHex = try #require(created.output.split(separator: " ").dropFirst().first.map(String.init))
            let account = try AccountID(validating: Hex.decode(accountHex), field: "account")
            let kept = try Self.conversation(try await runCloak(["send", "--new", "kept"] + a + at + ["before"]))
            let dropped = try Self.conversation(try await runCloak(["send", "--new", "dropped"] + a + at + ["before"]))

            let agent = try openClient(root.appendingPathComponent("agent"), server)
            let invitation = await agent.assistantInvitation()
            let granted = try await runCloak(
                ["assistant", "grant"] + a + at + [invitation.text, "--conversation", kept.hex, "--conversation", dropped.hex])
            #expect(granted.status == 0 && granted.output.contains("granted assistant \(invitation.id.hex) 2 conversation(s)"),
                    "\(granted)")
            try await agent.joinAsAssistant(account: account)
            await agent.startSync()
            try await eventually("the assistant holds both conversations") {
                let (known, texts) = (await agent.knownConversations(), await agent.allMessageTexts(dropped))
                return known == [kept, dropped].sorted() && texts == ["before"]
            }

            let restricted = try await runCloak(["assistant", "restrict"] + a + at + [invitation.id.hex, "--conversation", dropped.hex])
            #expect(restricted.status == 0, "\(restricted)")
            #expect(restricted.output.contains("restricted \(invitation.id.hex)") && restricted.output.contains("it keeps 1 conversation(s)"),
                    "\(restricted)")
            let listed = try await runCloak(["assistant", "list"] + a + at)
            #expect(listed.output.contains("conversations: \(kept.hex)\n"), "\(listed)")

            #expect(try await runCloak(["send", "--conversation", dropped.hex] + a + at + ["cloak-canary-after-restrict"]).status == 0)
            #expect(try await runCloak(["send", "--conversation", kept.hex] + a + at + ["still answered"]).status == 0)
            try await eventually("the assistant reads the conversation it kept") {
                await agent.allMessageTexts(kept).contains("still answered")
            }
            #expect(await agent.assistantGrant?.scope == [kept])
            #expect(await !agent.allMessageTexts(dropped).contains("cloak-canary-after-restrict"))

            // Mistakes are sentences: a conversation no longer in its scope, an id that is not one.
            let again = try await runCloak(["assistant", "restrict"] + a + at + [invitation.id.hex, "--conversation", dropped.hex])
            expectSentence(again, status: 1, "only conversations in the assistant's scope can be removed from it")
            let mistyped = try await runCloak(["assistant", "restrict"] + a + at + ["abc", "--conversation", kept.hex])
            expectSentence(mistyped, status: 64, "'abc' is not an assistant id: one is 32 hex digits")
            let none = try await runCloak(["assistant", "restrict"] + a + at + [invitation.id.hex])
            expectSentence(none, status: 64, "name at least one --conversation")

            // Taking away the last conversation ends its access, and says so.
            let last = try await runCloak(["assistant", "restrict"] + a + at + [invitation.id.hex, "--conversation", kept.hex])
            #expect(last.status == 0 && last.output.contains("revoked \(invitation.id.hex): that was its whole scope"), "\(last)")
            try await eventually("the assistant sees its access ended") { await agent.assistantGrant?.isActive == false }
            try await agent.close()
        }
    }
}
