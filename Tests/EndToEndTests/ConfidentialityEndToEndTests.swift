import CloakCRDT
import CloakProtocol
import CloakServerHTTP
import CloakSimulation
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

@Suite("End to end: confidentiality and bootstrap", .serialized)
struct ConfidentialityEndToEndTests {
    @Test("ADV-15 the server's SQLite files and both clients' stores contain none of the canaries")
    func canaries() async throws {
        let root = try temporaryDirectory("canaries")
        defer { try? FileManager.default.removeItem(at: root) }
        let canaries = ["cloak-canary-title-1", "cloak-canary-message-2", "cloak-canary-reaction-3",
                        "cloak-canary-stream-4", "cloak-canary-rename-5", "cloak-canary-model-6"]
        try await withServer(sqliteAt: root) { server in
            let (a, b) = try await syncingPair(root, server)
            let chat = try await a.createConversation(title: canaries[0])
            let prompt = try await a.appendMessage(to: chat, role: .user, text: "say \(canaries[1])")
            try await eventually("b sees the prompt") { await b.conversation(chat)?.messages.count == 1 }
            try await b.react(canaries[2], to: prompt, in: chat)
            let reply = try await b.beginMessage(in: chat, parent: prompt)
            for word in ["here", "is", canaries[3], "done"] { try await b.streamText(word + " ", into: reply, in: chat) }
            try await b.finishStreaming(in: chat)
            try await b.rename(chat, to: canaries[4])
            try await a.setMetadata(.model, to: .text(canaries[5]), in: chat)
            try await eventually("converged") { await converged([a, b], [chat]) }
            #expect(await a.conversation(chat)?.metadata.title == canaries[4])
            try await a.close()
            try await b.close()
        }
        let scanner = CanaryScanner(canaries: canaries)
        let serverFiles = ["server.sqlite", "server.sqlite-wal", "server.sqlite-shm"].map { root.appendingPathComponent($0) }
        let (serverLeaks, serverBytes) = try scanner.scan(files: serverFiles)
        #expect(serverBytes > 0)
        #expect(serverLeaks.isEmpty, "\(serverLeaks)")
        for device in ["a", "b"] {
            let (leaks, bytes) = try scanner.scan(files: CanaryScanner.files(under: root.appendingPathComponent(device)))
            #expect(bytes > 0)
            #expect(leaks.isEmpty, "\(leaks)")
        }
    }

    @Test("a new device bootstraps from the newest snapshot plus the change sets after it")
    func snapshotBootstrap() async throws {
        let root = try temporaryDirectory("bootstrap")
        defer { try? FileManager.default.removeItem(at: root) }
        let configuration = {
            var configuration = fastConfiguration
            configuration.snapshotEvery = 40
            return configuration
        }()
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server, configuration: configuration)
            try await a.createAccount()
            await a.startSync()
            let chat = try await a.createConversation(title: "long")
            for n in 0..<150 { try await a.appendMessage(to: chat, role: .user, text: "m\(n)") }
            #expect(await a.waitUntilSynced())
            try await eventually("a uploaded a snapshot") { await a._knowsSnapshot(chat) }
            for n in 0..<5 { try await a.appendMessage(to: chat, role: .user, text: "after \(n)") }
            let fresh = try openClient(root.appendingPathComponent("fresh"), server, configuration: configuration)
            try await link(fresh, to: a)
            await fresh.startSync()
            try await eventually("fresh converges") { await converged([a, fresh], [chat]) }
            #expect(await fresh._bootstrapped() >= 1)
            #expect(await fresh.conversations().first?.messageCount == 155)
            try await a.close()
            try await fresh.close()
        }
    }
}

extension CloakClient {
    func _bootstrapped() -> Int { engine.bootstrappedFromSnapshots }

    func _knowsSnapshot(_ conversation: ConversationID) -> Bool { engine.core.knowsSnapshot(of: conversation) }
}
