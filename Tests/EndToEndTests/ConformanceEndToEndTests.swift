import CloakConformance
import CloakProtocol
import CloakTesting
import Foundation
import Testing

/// The server conformance suite (`Protocol/conformance/`) against the real `cloak-server`
/// binary on loopback: short timeouts and small limits so that every scenario runs in seconds,
/// a second server for what needs a small quota or unverified pushes, and a third one that the
/// shutdown scenario stops.
@Suite("End to end: the conformance scenarios against cloak-server", .serialized)
struct ConformanceEndToEndTests {
    static let directory = TestData.repositoryRoot.appendingPathComponent("Protocol/conformance")

    /// The main server's policy, told to the runner as settings. The timeouts are short so the
    /// timeout scenario takes seconds, and long enough that a loaded CI machine never hits them
    /// in the other scenarios (a 4 MiB frame takes a while to send there).
    static let main: [(option: String, setting: String, value: String)] = [
        ("--max-catch-up-batch", "", "4"),
        ("--max-connections-per-account", "max_connections_per_account", "4"),
        ("--handshake-timeout", "handshake_timeout_ms", "3000"),
        ("--idle-timeout", "idle_timeout_ms", "6000"),
        ("--max-outbound-queue-bytes", "max_outbound_queue_bytes", "65536"),
        ("--verify-change-set-signatures", "verify_change_set_signatures", "true"),
        ("--recovery-lockout-after", "recovery_lockout_after", "3"),
    ]

    @Test("every scenario passes against cloak-server (or is skipped for a reason another server meets)")
    func scenarios() async throws {
        let scenarios = try Scenario.load(Self.directory.path)
        try #require(scenarios.count >= 15)
        var settings = ConformanceSettings()
        for (_, setting, value) in Self.main where !setting.isEmpty { try settings.set(setting, value) }
        try settings.set("recovery_keys", "true")
        // The main server holds a recovery (OPRF) key, in a file only its owner may read (§22).
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-conformance-\(UUID()).keys")
        try Data("cloak-recovery-keys 1\nkey 1 \(String(repeating: "5a", count: 32))\ncurrent 1\n".utf8).write(to: keyFile)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile.path)
        defer { try? FileManager.default.removeItem(at: keyFile) }
        var outcomes: [String: ScenarioOutcome] = [:]
        let mainArguments = Self.main.flatMap { [$0.option, $0.option.hasSuffix("-timeout") ? $0.value + "ms" : $0.value] }
        try await Self.withServer(mainArguments + ["--recovery-key-file", keyFile.path]) { url in
            let runner = ScenarioRunner(server: url, settings: settings)
            for scenario in scenarios { outcomes[scenario.file] = await runner.run(scenario) }
        }
        // A small quota and unverified pushes, for the scenarios the main server skipped.
        try await Self.withServer(["--max-account-bytes", "262144"]) { url in
            let runner = ScenarioRunner(server: url)
            for scenario in scenarios where outcomes[scenario.file]?.isSkipped == true {
                outcomes[scenario.file] = await runner.run(scenario)
            }
        }
        let stopping = try await ServerProcess.start(database: "memory:")
        let runner = ScenarioRunner(
            server: "ws://127.0.0.1:\(stopping.port)/v1/sync", shutdown: { await stopping.terminate() })
        for scenario in scenarios where outcomes[scenario.file]?.isSkipped == true {
            outcomes[scenario.file] = await runner.run(scenario)
        }
        await stopping.terminate()

        for scenario in scenarios {
            switch outcomes[scenario.file] {
            case .passed?: continue
            case .skipped(let reason)?: Issue.record("\(scenario.file) ran nowhere: \(reason)")
            case .failed(let step, let reason)?: Issue.record("\(scenario.file) failed at \(step): \(reason)")
            case nil: Issue.record("\(scenario.file) did not run")
            }
        }
        TestData.report(
            "conformance: \(outcomes.values.filter { $0 == .passed }.count) of \(scenarios.count) scenarios pass")
    }

    @Test("the scenarios send every client request of cloak.proto and expect every error code but INTERNAL")
    func coverage() throws {
        var text = ""
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.directory.path)
        where file.hasSuffix(".json") {
            text += try String(contentsOf: Self.directory.appendingPathComponent(file), encoding: .utf8)
        }
        let proto = try String(
            contentsOf: TestData.repositoryRoot.appendingPathComponent("Protocol/cloak.proto"), encoding: .utf8)
        let requests = Self.clientRequests(in: proto)
        #expect(requests.count == 20)
        for request in requests {
            #expect(text.contains("\"\(request)\": {"), "no scenario sends \(request)")
        }
        let codes = proto.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            return words.count == 3 && words[0].hasPrefix("ERROR_CODE_") && words[1] == "=" ? String(words[0]) : nil
        }
        #expect(codes.count == Cloak_V1_ErrorCode.allCases.count)
        // INTERNAL is a storage failure; ACCOUNT_BLOCKED follows an operator's command, which
        // no wire request can give (OperationsCommandTests and AbuseLimitTests cover it).
        for code in codes where code != "ERROR_CODE_INTERNAL" && code != "ERROR_CODE_ACCOUNT_BLOCKED" {
            #expect(text.contains("\"\(code)\""), "no scenario expects \(code)")
        }
    }

    /// The `Frame.body` members in the "client → server" group of cloak.proto.
    static func clientRequests(in proto: String) -> [String] {
        guard let start = proto.range(of: "// client → server") else { return [] }
        let block = proto[start.upperBound...].prefix { $0 != "}" }
        return block.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            return words.count >= 4 && words[2] == "=" ? String(words[1]) : nil
        }
    }

    static func withServer(_ arguments: [String], _ body: (String) async throws -> Void) async throws {
        // The suite registers an account per scenario from one address: cloak-server's
        // per-address registration limit (10 an hour) is for the open internet, not this run.
        let server = try await ServerProcess.start(
            database: "memory:", extraArguments: arguments + ["--registrations-per-address", "10000"])
        do {
            try await body("ws://127.0.0.1:\(server.port)/v1/sync")
        } catch {
            await server.terminate()
            throw error
        }
        await server.terminate()
    }
}

extension ScenarioOutcome {
    var isSkipped: Bool {
        if case .skipped = self { return true }
        return false
    }
}
