import CloakCrypto
import CloakProtocol
import CloakServerHTTP
import CloakTesting
import Foundation
import Testing

/// The operator's commands on the real executable: mistakes answered in sentences, backup and
/// restore, account administration.
@Suite(.timeLimit(.minutes(3))) struct OperationsCommandTests {
    private static func directory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-ops-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Every error case the server can meet before or while starting prints sentences, each
    /// naming the thing, and none that reads like a Swift value (`invalidLocation(…)`).
    @Test func everyStartUpMistakeIsASentence() async throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let garbage = directory.appendingPathComponent("garbage.pem").path
        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: garbage))
        let database = "sqlite:" + directory.appendingPathComponent("cloak.sqlite").path
        let existing = directory.appendingPathComponent("existing.sqlite").path
        #expect(FileManager.default.createFile(atPath: existing, contents: Data()))
        let busy = try await ServerProcess.start(database: database)
        defer { Task { await busy.terminate() } }
        let cases: [(arguments: [String], environment: [String: String], expected: String)] = [
            (["serve", "--port", "70000"], [:], "--port must be a port number"),
            (["serve"], ["CLOAK_PORT": "eighty"], "CLOAK_PORT must be a port number"),
            (["serve", "--database", "sqlite:" + directory.appendingPathComponent("typo.sqlite").path], [:], "does not exist"),
            (["serve", "--database", "mysql://db/cloak"], [:], "The database setting must be"),
            (["serve", "--config", directory.appendingPathComponent("none.json").path], [:], "does not exist"),
            (["serve", "--max-frame-byte", "1"], [:], "did you mean --max-frame-bytes"),
            (["serve", "--database", database, "--tls-cert", garbage, "--tls-key", garbage], [:], "could not be read as a PEM"),
            (["serve", "--database", database, "--port", "\(busy.port)"], [:], "already listens on"),
            (["serve", "--database", "postgres://cloak@127.0.0.1/db?sslmode=sometimes"], [:], "sslmode=sometimes"),
            (["serve", "--database-password-file", directory.appendingPathComponent("pw").path], [:], "does not exist"),
            (["serve", "--database", "postgres://cloak@127.0.0.1:1/cloak"], [:], "database"),
            (["accounts", "show", "xyz", "--database", "memory:"], [:], "is not an account id"),
            (["backup", "--to", existing, "--database", database], [:], "exists already"),
        ]
        for (arguments, environment, expected) in cases {
            let (status, _, errors) = try await runCloakServer(arguments, environment: environment, timeout: .seconds(40))
            #expect(status != 0, "\(arguments)")
            #expect(errors.contains(expected), "\(arguments): \(errors)")
            let lines = errors.split(separator: "\n").filter { $0.hasPrefix("cloak-server: ") }
            #expect(!lines.isEmpty, "\(arguments): \(errors)")
            for line in lines {
                #expect(
                    line.range(of: #"[A-Za-z_][A-Za-z0-9_]*\("#, options: .regularExpression) == nil,
                    "\(arguments): reads like a Swift value: \(line)")
            }
        }
    }

    @Test func versionAndHelpNameTheSettings() async throws {
        let version = try await runCloakServer(["--version"])
        #expect(version.output.hasPrefix("cloak-server \(ServerBuild.version) (protocol 1)"))
        let help = try await runCloakServer(["serve", "--help"])
        #expect(help.output.contains("--max-frame-bytes SIZE  (CLOAK_MAX_FRAME_BYTES; default: 4 MiB)"))
    }

    /// A backup taken while the server runs holds everything committed before it; restored under
    /// a stopped server, it is served whole, and a new database is owner-only.
    @Test func anOnlineBackupRestoresEverythingItHeld() async throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = directory.appendingPathComponent("data")
        let file = data.appendingPathComponent("cloak.sqlite").path
        let copy = directory.appendingPathComponent("backup.sqlite").path
        var account = TestAccount.make(seed: 580)
        let before = (0..<5).map { _ in account.next(in: conversation(1)) }
        let after = (0..<3).map { _ in account.next(in: conversation(2)) }
        var server = try await ServerProcess.start(database: "sqlite:" + file)
        let permissions = { (path: String) in (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? Int }
        #expect(permissions(data.path) == 0o700 && permissions(file) == 0o600)
        do {
            let client = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await client.login(account, register: true))
            try await client.send(Frames.push(before, id: 3))
            #expect(try await client.reply().pushAckBody?.results.map(\.cursor) == [1, 2, 3, 4, 5])
            let backup = try await runCloakServer(["backup", "--to", copy, "--database", "sqlite:" + file])
            #expect(backup.status == 0, "\(backup.errors)")
            #expect(backup.output.contains("backed up"))
            #expect(permissions(copy) == 0o600)
            try await client.send(Frames.push(after, id: 4))
            #expect(try await client.reply().pushAckBody?.results.map(\.cursor) == [6, 7, 8])
            await client.close()
        }
        await server.terminate()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
        try FileManager.default.copyItem(atPath: copy, toPath: file)
        server = try await ServerProcess.start(database: "sqlite:" + file)
        let reader = try await WebSocketTestClient.connect(port: server.port)
        #expect(try await reader.login(account))
        try await reader.send(Frames.subscribe(after: 0, id: 5))
        var served: [[UInt8]] = []
        while true {
            let frame = try await reader.reply()
            guard let deliver = frame.deliverBody else { continue }
            served += deliver.items.map { Array($0.changeSet) }
            if deliver.caughtUp { break }
        }
        #expect(served == before.map(\.wire))
        await reader.close()
        await server.terminate()
    }

    @Test func accountsAreListedBlockedAndErased() async throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = "sqlite:" + directory.appendingPathComponent("cloak.sqlite").path
        var account = TestAccount.make(seed: 590, devices: 2)
        let server = try await ServerProcess.start(database: database)
        let client = try await WebSocketTestClient.owner(of: account, port: server.port)
        try await client.send(Frames.push([account.next(in: conversation(1)), account.next(in: conversation(1))], id: 5))
        _ = try await client.reply()
        let id = account.account.hex
        let list = try await runCloakServer(["accounts", "list", "--database", database])
        #expect(list.status == 0, "\(list.errors)")
        let row = list.output.split(separator: "\n").first { $0.hasPrefix(id) }.map(String.init) ?? ""
        #expect(row.split(separator: " ").prefix(3).map(String.init) == [id, "2", "2"], "\(list.output)")
        #expect(row.hasSuffix("active"))
        let show = try await runCloakServer(["accounts", "show", id, "--database", database])
        #expect(show.output.contains("2 active, 2 device-log entries"))
        // The commits stamped the account's last write with the wall clock.
        let year = Calendar(identifier: .gregorian).component(.year, from: Date())
        #expect(show.output.contains("last write   \(year)-"), "\(show.output)")

        let block = try await runCloakServer(["accounts", "block", id, "--database", database])
        #expect(block.output.hasPrefix("Blocked account \(id)"))
        // The running server reads the block within its sweep and closes the connection.
        let (frames, code) = try await client.untilClosed(timeout: .seconds(20))
        #expect(frames.last?.errorCode == .accountBlocked && code == 1008)
        let refused = try await WebSocketTestClient.connect(port: server.port)
        #expect(try await !refused.login(account))
        _ = try await runCloakServer(["accounts", "unblock", id, "--database", database])
        let erase = try await runCloakServer(["accounts", "delete", id, "--database", database], input: "yes\n")
        #expect(erase.status == 0, "\(erase.errors)")
        #expect(erase.output.contains("Erased account \(id)") && erase.output.contains("2 from change_sets"))
        let gone = try await runCloakServer(["accounts", "show", id, "--database", database])
        #expect(gone.output.hasPrefix("No account \(id) is stored"))
        await server.terminate()
    }
}
