import CloakClient
import CloakProtocol
import CloakServer
import CloakServerHTTP
import CloakTesting
import Foundation
import Testing

/// Every error a person can meet in the `cloak` CLI, through the real executable: each is a
/// sentence naming the thing (a path, an id, a URL) and what to do, with its exit code, and
/// nothing on either stream reads like a Swift value (`unknownDevice(…)`, `notConnected`).
@Suite("cloak CLI: every error is a sentence", .serialized, .timeLimit(.minutes(4)))
struct CLIErrorTests {
    static let someID = String(repeating: "ab", count: 16)

    @Test("the command line, the directory and a server that is down")
    func withoutAServer() async throws {
        let root = try temporaryDirectory("clierrors")
        defer { try? FileManager.default.removeItem(at: root) }
        let missing = root.appendingPathComponent("nothing-here").path
        let empty = root.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let file = root.appendingPathComponent("a-file").path
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        let garbage = root.appendingPathComponent("garbage.pem").path
        #expect(FileManager.default.createFile(atPath: garbage, contents: Data("not a certificate\n".utf8)))
        let down = ["--server", downServer, "--timeout", "1"]
        let cases: [(arguments: [String], status: Int32, expected: String)] = [
            // Usage.
            (["show", "--dir", missing, "--server", "foo"], 64, "--server foo is not a server URL"),
            (["show", "--dir", missing, "--timeout", "0"], 64, "--timeout must be a number of seconds"),
            (["send", "--dir", missing, "--conversation", "zz", "hi"], 64, "'zz' is not a conversation id"),
            (["show", "--dir", missing, "--conversation", "12"], 64, "'12' is not a conversation id"),
            (["send", "--dir", missing, "--role", "boss", "hi"], 64, "--role boss is not a role"),
            (["remove", "--dir", missing, "xyz"], 64, "'xyz' is not a device id"),
            (["show", "--dir", missing, "--ca-file", missing + ".pem"], 64, "the CA file \(missing).pem does not exist"),
            (["show", "--dir", missing, "--ca-file", garbage], 64, "could not be read as PEM certificates"),
            (["frobnicate"], 64, "Unexpected argument 'frobnicate'"),
            // No device at --dir: said at once, and nothing is created.
            (["show", "--dir", missing] + down, 1, "there is no device at \(missing) (no such directory)"),
            (["send", "--dir", missing, "hi"] + down, 1, "there is no device at \(missing)"),
            (["devices", "--dir", missing] + down, 1, "there is no device at \(missing)"),
            (["status", "--dir", missing] + down, 1, "there is no device at \(missing)"),
            (["sync", "--dir", missing, "--seconds", "1"] + down, 1, "there is no device at \(missing)"),
            (["remove", "--dir", missing, Self.someID] + down, 1, "there is no device at \(missing)"),
            (["accept", "--dir", missing, "cloak1:00"] + down, 1, "there is no device at \(missing)"),
            (["recovery-setup", "--dir", missing] + down, 1, "there is no device at \(missing)"),
            (["show", "--dir", empty] + down, 1, "there is no device at \(empty) (the directory holds no Cloak device)"),
            (["show", "--dir", file] + down, 1, "\(file) is a file, not a device directory"),
            // The server is down: a creating command says so, naming the URL and why.
            (["init", "--dir", root.appendingPathComponent("new").path] + down, 2,
             "cannot reach the server at \(downServer): nothing accepts connections at 127.0.0.1:1 (connection refused)"),
            (["link", "--dir", root.appendingPathComponent("linking").path, "--yes"] + down, 2,
             "cannot reach the server at \(downServer)"),
            (["recover", "--dir", root.appendingPathComponent("r4").path, "--account", "xyz", "--passphrase"] + down, 64,
             "an account id is 64 hex digits"),
            (["recover", "--dir", root.appendingPathComponent("r5").path] + down, 64,
             "give --words, or --account ID --passphrase (the secret is asked for, not an argument)"),
            // Secrets stay off the command line: they are read from stdin, and nothing there is said so.
            (["recover", "--dir", root.appendingPathComponent("r6").path, "--words"] + down, 64, "nothing was entered"),
            (["recover", "--dir", root.appendingPathComponent("r7").path, "--account", Self.someID + Self.someID, "--passphrase"]
                + down, 64, "nothing was entered"),
        ]
        for (arguments, status, expected) in cases {
            expectSentence(try await runCloak(arguments), status: status, expected)
        }
        let words: [(input: String, expected: String)] = [
            ("one two three", "recovery words are 12 words separated by spaces; 3 were given"),
            ("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon zzzz",
             "word 12 of the recovery words is not in the word list"),
            (Array(repeating: "abandon", count: 12).joined(separator: " "), "the recovery words do not fit together"),
        ]
        for (index, (input, expected)) in words.enumerated() {
            let dir = root.appendingPathComponent("w\(index)").path
            expectSentence(try await runCloak(["recover", "--dir", dir, "--words"] + down, input: input + "\n"), status: 1, expected)
        }
        for path in [missing] { #expect(!FileManager.default.fileExists(atPath: path), "\(path) was created") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty, "files were made in \(empty)")

        // A device made by a link that never completed has keys but no account.
        let linking = root.appendingPathComponent("linking").path
        expectSentence(
            try await runCloak(["show", "--dir", linking] + down), status: 1,
            "the device at \(linking) has no account yet: run `cloak init --dir \(linking)`")
    }

    @Test("with a server: ids that name nothing, a second init, bad invitations, a busy directory, a server that stops")
    func withAServer() async throws {
        let root = try temporaryDirectory("clierrors-server")
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a").path
        try await withServer(store: InMemoryServerStore()) { server in
            let at = ["--server", server.syncURL, "--timeout", "10"]
            let created = try await runCloak(["init", "--dir", a] + at)
            #expect(created.status == 0, "\(created)")
            let cases: [(arguments: [String], status: Int32, expected: String)] = [
                (["init", "--dir", a] + at, 1, "the device at \(a) already belongs to an account"),
                (["send", "--dir", a, "--conversation", Self.someID, "hi"] + at, 1,
                 "there is no conversation \(Self.someID) on the device at \(a)"),
                (["show", "--dir", a, "--conversation", Self.someID] + at, 1, "there is no conversation \(Self.someID)"),
                (["remove", "--dir", a, Self.someID] + at, 1,
                 "\(Self.someID) is not an active device of this account: `cloak devices --dir \(a)` lists them"),
                (["accept", "--dir", a, "cloak1:zz"] + at, 1, "that invitation has a typo (its checksum does not match)"),
                (["accept", "--dir", a, "hello"] + at, 1, "that is not a Cloak invitation"),
                (["link", "--dir", a, "--yes"] + at, 1, "the device at \(a) already belongs to an account"),
            ]
            for (arguments, status, expected) in cases {
                expectSentence(try await runCloak(arguments), status: status, expected)
            }
            let this = try #require(CLIDeviceTests.thisDevice(try await runCloak(["devices", "--dir", a] + at)))
            expectSentence(
                try await runCloak(["remove", "--dir", a, this] + at), status: 1,
                "a device cannot remove itself; remove it from another device")
        }
    }
}
