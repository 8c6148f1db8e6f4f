import CloakCRDT
import CloakClient
import CloakProtocol
import CloakServerHTTP
import CloakTesting
import Foundation
import Testing

@Suite("End to end: a client process killed with SIGKILL mid-sync", .serialized)
struct ProcessKillTests {
    @Test("a cloak process killed mid-sync loses no accepted operation and duplicates none after reopening")
    func killNine() async throws {
        let binary = TestData.repositoryRoot.appendingPathComponent(".build/debug/cloak")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build the cloak executable first")
        let root = try temporaryDirectory("kill9")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer(sqliteAt: root) { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            let bDirectory = root.appendingPathComponent("b")
            let b = try openClient(bDirectory, server)
            try await link(b, to: a)
            try await b.close()
            await a.startSync()
            let chat = try await a.createConversation(title: "kill -9")
            #expect(await a.waitUntilSynced())

            let process = Process()
            process.executableURL = binary
            process.arguments = [
                "send", "--dir", bDirectory.path, "--server", server.syncURL, "--conversation", chat.hex,
                "--repeat", "5000", "line",
            ]
            let pipe = Pipe()
            process.standardOutput = pipe
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            // Read "accepted N" lines until a few hundred operations were accepted, then SIGKILL.
            let accepted = try await Self.acceptedCount(from: pipe.fileHandleForReading, atLeast: 400)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            let stderr = String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
            try #require(accepted >= 400, "the process accepted only \(accepted + 1) operations; stderr: \(stderr)")

            let reopened = try openClient(bDirectory, server)
            await reopened.startSync()
            #expect(await reopened.waitUntilSynced(timeout: .seconds(60)))
            try await eventually(timeout: .seconds(60), "a has everything b accepted") {
                (await a.conversations().first?.messageCount ?? 0) > accepted
            }
            try await eventually(timeout: .seconds(30), "both converge") { await converged([a, reopened], [chat]) }
            let texts = await allTexts(a, chat)
            for index in 0...accepted { #expect(texts.filter { $0 == "line \(index)" }.count == 1, "line \(index)") }
            #expect(Set(texts).count == texts.count, "no operation duplicated")
            try await a.close()
            try await reopened.close()
        }
    }

    /// Reads the CLI's "accepted N" lines until `atLeast` operations were accepted (or the
    /// output ends) and returns the highest N, on a thread of its own (``onOwnThread(_:)``: the
    /// in-process server must be free to accept them).
    static func acceptedCount(from handle: FileHandle, atLeast target: Int) async throws -> Int {
        try await onOwnThread {
            var accepted = -1
            var buffer = Data()
            while accepted < target {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer += chunk
                let lines = String(decoding: buffer, as: UTF8.self).split(separator: "\n")
                for line in lines where line.hasPrefix("accepted ") {
                    accepted = max(accepted, Int(line.dropFirst(9)) ?? -1)
                }
            }
            return accepted
        }
    }
}

/// Every message text of a conversation (all branches), via the rendered tree.
func allTexts(_ client: CloakClient, _ conversation: ConversationID) async -> [String] {
    await client.allMessageTexts(conversation)
}
