import CloakCRDT
import CloakProtocol
import CloakTesting
import CloakTransport
import Foundation
import Logging
import Testing

@_spi(Simulation) @testable import CloakClient

/// ADV-44 as an operator causes it: the real `cloak-server` process, its real SQLite file
/// copied while the server was stopped and copied back later (disaster recovery from an older
/// backup), and devices on the public client API that must notice, heal the server and
/// converge with nothing lost.
@Suite("End to end: a server restored from an older copy of its database", .serialized)
struct RestoredServerEndToEndTests {
    @Test("ADV-44 a restored SQLite file: every device reports serverRollback, heals the server, and nothing is lost")
    func restoredSQLiteFile() async throws {
        let root = try temporaryDirectory("restored")
        defer { try? FileManager.default.removeItem(at: root) }
        let database = root.appendingPathComponent("server.sqlite").path
        let backup = root.appendingPathComponent("backup.sqlite").path
        try await RestoredServerScenario(root: root, database: "sqlite:\(database)").run(
            backUp: { try Self.copyDatabase(from: database, to: backup) },
            restore: { try Self.copyDatabase(from: backup, to: database) })
    }

    /// Copies a stopped server's database file (and a WAL left beside it, if any).
    private static func copyDatabase(from source: String, to target: String) throws {
        let files = FileManager.default
        for suffix in ["", "-wal", "-shm"] {
            try? files.removeItem(atPath: target + suffix)
            if files.fileExists(atPath: source + suffix) { try files.copyItem(atPath: source + suffix, toPath: target + suffix) }
        }
    }
}

/// The restored-backup scenario on any database the real `cloak-server` opens: devices write,
/// the operator backs the database up (server stopped), devices write more, the operator
/// restores the backup under the stopped server. Every device must report one
/// `serverRollback`, heal the server, and converge with nothing lost.
struct RestoredServerScenario {
    /// Where the devices' stores live.
    let root: URL
    /// The server's `--database` argument.
    let database: String

    /// Runs the scenario; `backUp` and `restore` are called while the server is stopped.
    func run(backUp: () async throws -> Void, restore: () async throws -> Void) async throws {
        // Before the backup: an account with two devices and three messages.
        var server = try await ServerProcess.start(database: database)
        var a = try open("a", server)
        var b = try open("b", server)
        try await a.createAccount()
        try await link(b, to: a)
        await a.startSync()
        await b.startSync()
        let chat = try await a.createConversation(title: "cloak-canary-restored-title")
        for index in 1...3 { _ = try await a.appendMessage(to: chat, role: .user, text: "before \(index)") }
        try await eventually("b has the first three") { await b.conversation(chat)?.messages.count == 3 }
        try await closeAll([a, b])
        await server.terminate()
        try await backUp()

        // After the backup: more from both devices, which the restored server will not have.
        server = try await ServerProcess.start(database: database)
        (a, b) = (try open("a", server), try open("b", server))
        await a.startSync()
        await b.startSync()
        _ = try await a.appendMessage(to: chat, role: .user, text: "after a1")
        _ = try await a.appendMessage(to: chat, role: .user, text: "after a2")
        // One path, not siblings: B answers once it has A's two.
        try await eventually("b has five") { await b.conversation(chat)?.messages.count == 5 }
        _ = try await b.appendMessage(to: chat, role: .assistant, text: "after b1")
        try await eventually("both have six") {
            let (onA, onB) = (await a.conversation(chat)?.messages.count, await b.conversation(chat)?.messages.count)
            return onA == 6 && onB == 6
        }
        try await eventually("both acknowledged") {
            let (syncedA, syncedB) = (await a.syncStatus().isSynced, await b.syncStatus().isSynced)
            return syncedA && syncedB
        }
        try await closeAll([a, b])
        await server.terminate()

        // The operator restores the older copy.
        try await restore()
        server = try await ServerProcess.start(database: database)
        defer { Task { [server] in await server.terminate() } }
        (a, b) = (try open("a", server), try open("b", server))
        await a.startSync()
        await b.startSync()
        for device in [a, b] {
            try await eventually("a serverRollback event") {
                try await device.recordedSecurityEvents().contains { $0.kind == .serverRollback }
            }
        }
        try await eventually("both healed and synced") {
            let (syncedA, syncedB) = (await a.syncStatus().isSynced, await b.syncStatus().isSynced)
            let same = await converged([a, b], [chat])
            return syncedA && syncedB && same
        }
        let texts = Set(await a.conversation(chat)?.messages.map(\.text) ?? [])
        #expect(texts == ["before 1", "before 2", "before 3", "after a1", "after a2", "after b1"])
        #expect(await b.conversation(chat)?.messages.count == 6)
        // One rollback is one event per device, not one per check that noticed it.
        for device in [a, b] {
            let rollbacks = try await device.recordedSecurityEvents().filter { $0.kind == .serverRollback }
            #expect(rollbacks.count == 1, "\(rollbacks.map(\.detail))")
        }

        // The server holds the union again: a device linked now, with nothing of its own, gets all six.
        let c = try open("c", server)
        try await link(c, to: a)
        await c.startSync()
        try await eventually("a new device sees everything") { await c.conversation(chat)?.messages.count == 6 }
        #expect(Set(await c.conversation(chat)?.messages.map(\.text) ?? []) == texts)
        // No cursor was reused for other content: the new device raised nothing.
        #expect(try await c.recordedSecurityEvents().isEmpty)
        try await closeAll([a, b, c])
    }

    private func open(_ name: String, _ server: ServerProcess) throws -> CloakClient {
        var logger = Logger(label: "e2e.client")
        logger.logLevel = .error
        return try CloakClient.open(
            directory: root.appendingPathComponent(name), server: URL(string: "ws://127.0.0.1:\(server.port)/v1/sync")!,
            transport: WebSocketTransport(), configuration: fastConfiguration, logger: logger)
    }

    private func closeAll(_ clients: [CloakClient]) async throws {
        for client in clients { try await client.close() }
    }
}
