import CloakTesting
import Foundation
import Testing

/// The `cloak` CLI over the real `cloak-server` with a recovery key file (issue 26): a weak
/// passphrase is refused with an estimate, secrets come from standard input and never from the
/// command line, and the other device prints the recovered device with how to remove it.
@Suite("End to end: the cloak CLI's recovery passphrase", .serialized)
struct RecoveryCLIEndToEndTests {
    static let passphrase = "velvet orbit cactus harbor lantern mosaic"

    /// Runs `cloak` with `input` on standard input; ends it after 60 s.
    static func cloak(_ arguments: [String], input: String = "") async throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = try ServerProcess.binary().deletingLastPathComponent().appendingPathComponent("cloak")
        process.arguments = arguments
        let (stdin, stdout, stderr) = (Pipe(), Pipe(), Pipe())
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            if process.isRunning { process.terminate() }
        }
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        watchdog.cancel()
        return (process.terminationStatus, output, errors)
    }

    @Test("weak passphrase refused with an estimate; set and recovered through stdin; the other device prints the new one")
    func passphraseThroughTheCLI() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-cli-\(UInt64.random(in: 0..<UInt64.max))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let keys = root.appendingPathComponent("recovery.keys")
        try Data("cloak-recovery-keys 1\nkey 1 \(String(repeating: "3c", count: 32))\ncurrent 1\n".utf8).write(to: keys)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keys.path)
        let server = try await ServerProcess.start(database: "memory:", extraArguments: ["--recovery-key-file", keys.path])
        defer { Task { await server.terminate() } }
        let url = ["--server", "ws://127.0.0.1:\(server.port)/v1/sync"]
        let a = ["--dir", root.appendingPathComponent("a").path] + url

        let created = try await Self.cloak(["init"] + a)
        #expect(created.status == 0, "\(created.errors)")
        let account = try #require(created.output.split(separator: " ").dropFirst().first.map(String.init))
        #expect(account.count == 64)

        let weak = try await Self.cloak(["recovery-setup", "--passphrase"] + a, input: "letmein\n")
        #expect(weak.status == 1)
        #expect(weak.errors.contains("too easy to guess") && weak.errors.contains("bits"), "\(weak.errors)")
        let strong = try await Self.cloak(["recovery-setup", "--passphrase"] + a, input: Self.passphrase + "\n")
        #expect(strong.status == 0, "\(strong.errors)")

        // A passphrase on the command line is not taken.
        let argv = try await Self.cloak(["recover", "--account", account, "--passphrase", Self.passphrase] + url)
        #expect(argv.status != 0)

        let r = ["--dir", root.appendingPathComponent("r").path] + url
        let recovered = try await Self.cloak(["recover", "--account", account, "--passphrase"] + r, input: Self.passphrase + "\n")
        #expect(recovered.status == 0 && recovered.output.contains("recovered"), "\(recovered.errors)")

        let told = try await Self.cloak(["sync", "--seconds", "2"] + a)
        #expect(told.errors.contains("joined with the recovery secret") && told.errors.contains("cloak remove"), "\(told.errors)")
    }
}
