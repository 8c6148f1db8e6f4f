import CloakClient
import CloakProtocol
import CloakServer
import CloakServerHTTP
import CloakTesting
import Foundation
import Testing

/// The `cloak` CLI's rules for a device directory and for waiting on the server, through the
/// real executable: one process per directory, a bounded wait with progress when the server
/// is down, a truthful `status`, dates as dates, and a removed device that says so (exit 3).
@Suite("cloak CLI: devices, waits and status", .serialized, .timeLimit(.minutes(4)))
struct CLIDeviceTests {
    /// The id `cloak devices` marks as this device.
    static func thisDevice(_ result: CLIResult) -> String? {
        result.output.split(separator: "\n").first { $0.contains("(this device") }.map { String($0.prefix(32)) }
    }

    /// A 13-digit number: epoch milliseconds printed raw.
    static func hasEpochMillis(_ text: String) -> Bool {
        text.range(of: #"(^|[^0-9a-f])1[0-9]{12}([^0-9a-f]|$)"#, options: .regularExpression) != nil
    }

    @Test("--version names the client and protocol versions")
    func version() async throws {
        let result = try await runCloak(["--version"])
        #expect(result.status == 0)
        #expect(result.output == "cloak \(CloakClient.version) (protocol 1)\n")
    }

    @Test("status is truthful, devices prints dates, and a down server is a bounded wait with progress that loses nothing")
    func statusAndBoundedWait() async throws {
        let root = try temporaryDirectory("clistatus")
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a").path
        try await withServer(store: InMemoryServerStore()) { server in
            let at = ["--server", server.syncURL, "--timeout", "10"]
            #expect(try await runCloak(["init", "--dir", a] + at).status == 0)
            let sent = try await runCloak(["send", "--dir", a, "--new", "Trip", "first"] + at)
            #expect(sent.status == 0 && sent.output.hasPrefix("sent to "), "\(sent)")

            let status = try await runCloak(["status", "--dir", a] + at)
            #expect(status.status == 0, "\(status)")
            for line in ["connection: live since 20", "local edits the server has not acknowledged: 0", "(this device)",
                         "open incidents: none", "state: up to date"] {
                #expect(status.output.contains(line), "\(line): \(status)")
            }
            #expect(!Self.hasEpochMillis(status.output), "\(status)")
            let offline = try await runCloak(["status", "--dir", a, "--offline"] + at)
            #expect(offline.status == 0 && offline.output.contains("connection: not connected (--offline)"), "\(offline)")

            let devices = try await runCloak(["devices", "--dir", a] + at)
            #expect(devices.status == 0, "\(devices)")
            #expect(devices.output.range(of: #"^[0-9a-f]{32}  added 20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8} "#,
                                         options: .regularExpression) != nil, "\(devices)")
            #expect(!Self.hasEpochMillis(devices.output), "\(devices)")

            // The server is down: progress after two seconds, a sentence at the timeout, exit 2.
            let down = ["--server", downServer, "--timeout", "3"]
            let shown = try await runCloak(["show", "--dir", a] + down)
            expectSentence(
                shown, status: 2,
                "cannot reach the server at \(downServer): nothing accepts connections at 127.0.0.1:1 (connection refused)")
            #expect(shown.errors.contains("trying again ("), "no progress while waiting: \(shown)")
            #expect(shown.output.contains("first"), "this device's copy is still shown: \(shown)")
            #expect(shown.seconds < 9, "waited \(shown.seconds) s")
            let offlineSend = try await runCloak(["send", "--dir", a, "written offline"] + down)
            expectSentence(offlineSend, status: 2, "cannot reach the server at \(downServer)")
            #expect(offlineSend.output.contains("saved on this device in conversation"), "\(offlineSend)")
            #expect(!offlineSend.output.contains("sent to"), "\(offlineSend)")
            let downStatus = try await runCloak(["status", "--dir", a] + down)
            expectSentence(downStatus, status: 2, "cannot reach the server")
            #expect(downStatus.output.contains("local edits the server has not acknowledged: 1"), "\(downStatus)")
            #expect(downStatus.output.contains("state: NOT up to date"), "\(downStatus)")

            // Back online, the offline message goes out.
            let synced = try await runCloak(["sync", "--dir", a, "--seconds", "0"] + at)
            #expect(synced.status == 0, "\(synced)")
            let after = try await runCloak(["status", "--dir", a] + at)
            #expect(after.output.contains("local edits the server has not acknowledged: 0"), "\(after)")
        }
    }

    @Test("two processes on one directory: the second says which process holds it")
    func lock() async throws {
        let root = try temporaryDirectory("clilock")
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a").path
        try await withServer(store: InMemoryServerStore()) { server in
            let at = ["--server", server.syncURL, "--timeout", "10"]
            #expect(try await runCloak(["init", "--dir", a] + at).status == 0)
            let holder = Process()
            holder.executableURL = try ServerProcess.binary(named: "cloak")
            holder.arguments = ["sync", "--dir", a, "--seconds", "60"] + at
            holder.standardOutput = FileHandle.nullDevice
            holder.standardError = FileHandle.nullDevice
            try holder.run()
            defer {
                holder.terminate()
                holder.waitUntilExit()
            }
            let lockFile = root.appendingPathComponent("a/cloak.lock").path
            let pid = "\(holder.processIdentifier)"
            for _ in 0..<200 {
                if (try? String(contentsOfFile: lockFile, encoding: .utf8))?.hasPrefix(pid) == true { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let second = try await runCloak(["show", "--dir", a] + at)
            expectSentence(
                second, status: 1, "another cloak process (pid \(pid)) is using the device at \(a): wait for it to finish")
            #expect(!second.errors.contains("SQLite"), "\(second)")
        }
    }

    @Test("a removed device learns it, says when and by whom, exits 3 and never says sent")
    func removedDevice() async throws {
        let root = try temporaryDirectory("cliremoved")
        defer { try? FileManager.default.removeItem(at: root) }
        let aDirectory = root.appendingPathComponent("a")
        let bDirectory = root.appendingPathComponent("b")
        try await withServer(store: InMemoryServerStore()) { server in
            let at = ["--server", server.syncURL, "--timeout", "10"]
            let a = try openClient(aDirectory, server)
            let b = try openClient(bDirectory, server)
            try await a.createAccount()
            try await link(b, to: a)
            try await a.close()
            try await b.close()

            let removed = try await runCloak(["remove", "--dir", aDirectory.path, b.deviceID.hex] + at)
            #expect(removed.status == 0 && removed.output.contains("removed \(b.deviceID.hex)"), "\(removed)")
            let listed = try await runCloak(["devices", "--dir", aDirectory.path] + at)
            #expect(listed.output.contains("removed 20"), "\(listed)")
            #expect(listed.output.contains("by \(a.deviceID.hex)"), "\(listed)")

            let expected = "this device (\(bDirectory.path)) was removed from the account on 20"
            let send = try await runCloak(["send", "--dir", bDirectory.path, "after removal"] + at)
            expectSentence(send, status: 3, expected)
            #expect(send.errors.contains("by device \(a.deviceID.hex)"), "\(send)")
            #expect(!send.output.contains("sent"), "\(send)")
            // Known now: the next command says so at once, without the server.
            let show = try await runCloak(["show", "--dir", bDirectory.path, "--server", downServer])
            expectSentence(show, status: 3, expected)
            #expect(show.seconds < 5, "\(show)")
        }
    }
}
