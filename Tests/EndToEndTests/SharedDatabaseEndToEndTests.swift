import CloakCRDT
import CloakClient
import CloakProtocol
import CloakServer
import CloakServerHTTP
import CloakTesting
import Foundation
import Logging
import Testing

@Suite(
    "End to end: two server processes on one PostgreSQL database",
    .serialized,
    .enabled(
        if: PostgresTestDatabase.adminURL != nil,
        "PostgreSQL end-to-end tests skipped: CLOAK_TEST_POSTGRES_URL is not set (scripts/postgres start prints one)"))
struct SharedDatabaseEndToEndTests {
    @Test("devices connected to different server processes link, edit at once and converge")
    func devicesOnTwoProcessesConverge() async throws {
        var logger = Logger(label: "e2e.server")
        logger.logLevel = .error
        let (url, drop) = try await PostgresTestDatabase.create(logger: logger)
        let root = try temporaryDirectory("shared-db")
        defer { try? FileManager.default.removeItem(at: root) }
        // Each "process": its own store (connection pool and LISTEN connection) and registry.
        let stores = try [PostgresServerStore(url: url, logger: logger), PostgresServerStore(url: url, logger: logger)]
        do {
            for store in stores { try await store.migrate() }
            var shared = HTTPServerConfiguration(port: 0)
            shared.sync.sharedStore = true
            let (configuration, logger) = (shared, logger)
            try await CloakHTTPServer.withRunning(configuration: configuration, store: stores[0], logger: logger) { first in
                try await CloakHTTPServer.withRunning(configuration: configuration, store: stores[1], logger: logger) {
                    second in
                    try await Self.editThroughBoth(first, second, root)
                }
            }
        } catch {
            for store in stores { await store.close() }
            await drop()
            throw error
        }
        for store in stores { await store.close() }
        await drop()
    }

    private static func editThroughBoth(_ first: RunningServer, _ second: RunningServer, _ root: URL) async throws {
        let a = try openClient(root.appendingPathComponent("a"), first)
        let b = try openClient(root.appendingPathComponent("b"), second)
        try await a.createAccount()
        try await link(b, to: a)  // the pairing mailbox is written through one process, read through the other
        await a.startSync()
        await b.startSync()
        let chat = try await a.createConversation(title: "two processes")
        try await eventually("b, on the other process, sees the conversation") { await b.conversation(chat) != nil }
        async let fromA: Void = Self.append(20, by: a, to: chat, label: "a")
        async let fromB: Void = Self.append(20, by: b, to: chat, label: "b")
        _ = try await (fromA, fromB)
        try await eventually(timeout: .seconds(60), "both converge") { await converged([a, b], [chat]) }
        #expect(await a.conversations().first?.messageCount == 40)
        let texts = Set(await allTexts(b, chat))
        #expect(texts == Set((0..<20).map { "a \($0)" } + (0..<20).map { "b \($0)" }))
        #expect(try await b.devices().count == 2)
        try await a.close()
        try await b.close()
    }

    private static func append(_ count: Int, by client: CloakClient, to chat: ConversationID, label: String)
        async throws
    {
        for n in 0..<count {
            try await client.appendMessage(to: chat, role: .user, text: "\(label) \(n)")
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
