import CloakCRDT
import CloakClient
@_spi(Randomness) import CloakProtocol
import CloakServer
import CloakServerHTTP
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

@Suite("End to end: clients and the real server over loopback WebSockets", .serialized)
struct SyncEndToEndTests {
    @Test("two linked devices converge after concurrent edits")
    func concurrentEdits() async throws {
        let root = try temporaryDirectory("concurrent")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let (a, b) = try await syncingPair(root, server)
            let chat = try await a.createConversation(title: "plans")
            try await eventually("b sees the conversation") { await b.conversation(chat) != nil }
            var rng = SeededRandom(seed: 11)
            for n in 0..<40 {
                let device = Bool.random(using: &rng) ? a : b
                try await device.appendMessage(to: chat, role: n % 2 == 0 ? .user : .assistant, text: "m\(n)")
            }
            try await eventually("both converge") { await converged([a, b], [chat]) }
            #expect(await a.conversations().first?.messageCount == 40)
            #expect(try await a.devices().count == 2)
            try await a.close()
            try await b.close()
        }
    }

    @Test("a device offline for 1,000 operations reconnects and both converge")
    func offlineDevice() async throws {
        let root = try temporaryDirectory("offline")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let (a, b) = try await syncingPair(root, server)
            let chat = try await a.createConversation(title: "offline")
            try await eventually("b sees the conversation") { await b.conversation(chat) != nil }
            await b.stopSync()
            var last: MessageID?
            for n in 0..<1000 {
                last = try await b.appendMessage(to: chat, role: .user, text: "offline \(n)", parent: last)
            }
            for n in 0..<20 { try await a.appendMessage(to: chat, role: .assistant, text: "online \(n)") }
            await b.startSync()
            try await eventually(timeout: .seconds(60), "both converge") { await converged([a, b], [chat]) }
            #expect(await a.conversations().first?.messageCount == 1020)
            try await a.close()
            try await b.close()
        }
    }

    @Test("a streamed reply of 2,000 chunks arrives complete and in order on the other device")
    func streamedReply() async throws {
        let root = try temporaryDirectory("stream")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let (a, b) = try await syncingPair(root, server)
            let chat = try await a.createConversation()
            let prompt = try await a.appendMessage(to: chat, role: .user, text: "write a poem")
            let reply = try await a.beginMessage(in: chat, parent: prompt)
            var expected = ""
            for n in 0..<2000 {
                let chunk = "w\(n) "
                expected += chunk
                try await a.streamText(chunk, into: reply, in: chat)
            }
            try await a.finishStreaming(in: chat)
            try await eventually("b has the whole reply") {
                await b.conversation(chat)?.messages.last?.text == expected
            }
            #expect(await b.conversation(chat)?.messages.map(\.role) == [.user, .assistant])
            try await a.close()
            try await b.close()
        }
    }

    @Test("a client closed abruptly mid-sync and reopened loses no accepted operation and duplicates none")
    func crashAndReopen() async throws {
        let root = try temporaryDirectory("crash")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let aDirectory = root.appendingPathComponent("a")
            var a: CloakClient? = try openClient(aDirectory, server)
            let b = try openClient(root.appendingPathComponent("b"), server)
            try await a!.createAccount()
            try await link(b, to: a!)
            await b.startSync()
            await a!.startSync()
            let chat = try await a!.createConversation(title: "crash")
            for n in 0..<300 { try await a!.appendMessage(to: chat, role: .user, text: "n\(n)") }
            let reply = try await a!.beginMessage(in: chat)
            try await a!.streamText("partial stream", into: reply, in: chat)
            // "Crash": stop without close(), so no state save and no flush of the stream batch.
            await a!.stopSync()
            a = nil
            let reopened = try openClient(aDirectory, server)
            await reopened.startSync()
            try await eventually(timeout: .seconds(60), "both converge") { await converged([reopened, b], [chat]) }
            let messages = await b.conversation(chat)?.messages ?? []
            #expect(await b.conversations().first?.messageCount == 301)
            #expect(messages.last?.text == "partial stream")
            #expect(Set(messages.dropLast().map(\.text)).count == 300)
            try await reopened.close()
            try await b.close()
        }
    }
}
