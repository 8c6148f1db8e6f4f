import CloakServer
import CloakServerHTTP
import CloakTesting
import Foundation
import Testing

/// The `cloak` CLI and the security of its connection and its data: a security event that
/// fires during a command makes it exit 3 and is printed once; `wss://` with a private
/// certificate authority works with `--ca-file` and says what to do without it.
@Suite("cloak CLI: security events and TLS", .serialized, .timeLimit(.minutes(4)))
struct CLISecurityTests {
    @Test("ADV-44 a server restored from an older copy: the command prints the event once, heals, exits 3; the next exits 0")
    func restoredServerExitsThree() async throws {
        let root = try temporaryDirectory("clirestored")
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a").path
        let store = InMemoryServerStore()
        let backup = try await withServer(store: store) { server in
            let at = ["--server", server.syncURL, "--timeout", "10"]
            #expect(try await runCloak(["init", "--dir", a] + at).status == 0)
            #expect(try await runCloak(["send", "--dir", a, "--new", "Notes", "one"] + at).status == 0)
            let backup = store.backup()
            for text in ["two", "three"] {
                let sent = try await runCloak(["send", "--dir", a, text] + at)
                #expect(sent.status == 0 && sent.output.hasPrefix("sent to"), "\(sent)")
            }
            return backup
        }
        try await withServer(store: backup) { server in
            let at = ["--server", server.syncURL, "--timeout", "15"]
            let first = try await runCloak(["show", "--dir", a] + at)
            #expect(first.status == 3, "\(first)")
            let alarms = first.errors.split(separator: "\n").filter { $0.hasPrefix("cloak: security: ") }
            #expect(alarms.count == 1, "each event once: \(first)")
            #expect(alarms.first?.contains("the server forgot what it had acknowledged or delivered") == true, "\(first)")
            #expect(first.errors.contains("security event fired during this command"), "\(first)")
            for text in ["one", "two", "three"] { #expect(first.output.contains("user: \(text)"), "\(first)") }
            #expect(swiftValueLines(first.output + first.errors).isEmpty, "\(first)")
            // Healed: the server holds what it had lost, and nothing is reported again.
            let second = try await runCloak(["show", "--dir", a] + at)
            #expect(second.status == 0, "\(second)")
            #expect(!second.errors.contains("security:"), "\(second)")
        }
    }

    @Test("wss:// with a private certificate authority: refused with advice, then trusted with --ca-file")
    func privateCertificateAuthority() async throws {
        let root = try temporaryDirectory("cliwss")
        defer { try? FileManager.default.removeItem(at: root) }
        let tls = try Self.makeCertificateAuthority(in: root)
        let server = try await ServerProcess.start(
            database: "memory:", extraArguments: ["--tls-cert", tls.cert, "--tls-key", tls.key])
        defer { Task { await server.terminate() } }
        let a = root.appendingPathComponent("a").path
        let url = "wss://localhost:\(server.port)/v1/sync"
        let untrusted = try await runCloak(["init", "--dir", a, "--server", url, "--timeout", "5"])
        expectSentence(
            untrusted, status: 2,
            "the TLS certificate of localhost:\(server.port) is not signed by a trusted certificate authority")
        #expect(untrusted.errors.contains("--ca-file"), "\(untrusted)")
        let byAddress = try await runCloak(
            ["init", "--dir", a, "--server", "wss://127.0.0.1:\(server.port)/v1/sync", "--ca-file", tls.ca, "--timeout", "5"])
        expectSentence(byAddress, status: 2, "wss:// needs a host name, not an IP address")
        let trusted = try await runCloak(["init", "--dir", a, "--server", url, "--ca-file", tls.ca, "--timeout", "10"])
        #expect(trusted.status == 0, "\(trusted)")
        let sent = try await runCloak(["send", "--dir", a, "--server", url, "--ca-file", tls.ca, "over TLS"])
        #expect(sent.status == 0 && sent.output.hasPrefix("sent to"), "\(sent)")
        await server.terminate()
    }

    /// A certificate authority and a certificate for `localhost` it signed, made with openssl.
    static func makeCertificateAuthority(in directory: URL) throws -> (ca: String, cert: String, key: String) {
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        try Data("subjectAltName=DNS:localhost\n".utf8).write(to: URL(fileURLWithPath: path("ext.cnf")))
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509"] + curve + ["-days", "1", "-subj", "/CN=Cloak test CA", "-keyout", path("ca.key"),
                                                "-out", path("ca.pem")])
        try openssl(["req"] + curve + ["-subj", "/CN=localhost", "-keyout", path("key.pem"), "-out", path("req.csr")])
        try openssl(["x509", "-req", "-in", path("req.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                     "-CAcreateserial", "-days", "1", "-extfile", path("ext.cnf"), "-out", path("cert.pem")])
        return (path("ca.pem"), path("cert.pem"), path("key.pem"))
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "openssl \(arguments.first ?? "") failed")
    }
}
