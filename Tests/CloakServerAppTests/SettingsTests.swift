import CloakProtocol
import CloakServer
import CloakServerApp
import CloakServerHTTP
import Foundation
import Testing

/// Settings from flags, the environment and a JSON file, in that order of precedence; every
/// mistake a sentence naming where it came from.
@Suite struct SettingsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    private func load(
        _ arguments: [String] = [], environment: [String: String] = [:], file: String? = nil
    ) async throws(ConfigurationError) -> ServerSettings {
        let flags = try SettingsLoader.flags(arguments, allowed: Setting.all)
        return try await ServerSettings.load(flags: flags, create: false, environment: environment, configFile: file)
    }

    private func problems(
        _ arguments: [String] = [], environment: [String: String] = [:], file: String? = nil
    ) async -> [String] {
        do {
            _ = try await load(arguments, environment: environment, file: file)
            return []
        } catch { return error.problems }
    }

    private func withFile(_ json: String, _ body: (String) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-config-\(UUID().uuidString).json").path
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await body(path)
    }

    @Test func defaultsAreTheDocumentedOnes() async throws {
        let settings = try await load()
        #expect(settings.http.port == 8080 && settings.http.host == "127.0.0.1")
        #expect(settings.http.sync.limits.maxFrameBytes == 4 << 20)
        #expect(settings.http.sync.limits.maxAccountBytes == 8 << 30)
        #expect(settings.http.sync.maxTotalStoredBytes == .max)
        #expect(settings.http.sync.maxConnections == 20_000 && settings.http.sync.maxConnectionsPerAddress == 200)
        #expect(settings.http.sync.maxRegistrationsPerAddress == 10 && settings.http.sync.registrationWindowMs == 3_600_000)
        #expect(settings.http.sync.idleTimeoutMs == 120_000 && settings.http.compactEveryMs == nil)
        #expect(settings.store.database == "sqlite:./cloak-data/cloak.sqlite" && settings.store.logFormat == .text)
    }

    @Test func aFlagBeatsTheEnvironmentWhichBeatsTheFile() async throws {
        try await withFile(#"{"port": 7000, "maxFrameBytes": "2 MiB", "idleTimeout": "5m", "logFormat": "json"}"#) { path in
            let settings = try await load(
                ["--port", "9000"], environment: ["CLOAK_PORT": "8000", "CLOAK_MAX_FRAME_BYTES": "3MiB"], file: path)
            #expect(settings.http.port == 9000)
            #expect(settings.http.sync.limits.maxFrameBytes == 3 << 20)
            #expect(settings.http.sync.idleTimeoutMs == 300_000)
            #expect(settings.store.logFormat == .json)
        }
    }

    @Test func theExampleConfigFileOfDeployIsValid() async throws {
        let path = Self.root.appendingPathComponent("Deploy/cloak-server.json").path
        let settings = try await load(file: path)
        #expect(settings.http.host == "0.0.0.0")
        #expect(settings.store.database == "sqlite:/var/lib/cloak-server/cloak.sqlite")
        #expect(settings.http.sync.maxTotalStoredBytes == 400 << 30)
        #expect(settings.http.compactEveryMs == 3_600_000)
        #expect(settings.store.logFormat == .json)
    }

    @Test func everyMistakeIsOneSentenceNamingItsSource() async {
        let found = await problems(
            ["--port", "70000", "--max-frame-bytes", "4 MX", "--idle-timeout=30"],
            environment: ["CLOAK_MAX_CONNECTIONS": "0", "CLOAK_VERIFY_CHANGE_SET_SIGNATURES": "yes", "CLOAK_LOG_FORMAT": "yaml"])
        #expect(found.count == 6, "\(found)")
        #expect(found.contains { $0.hasPrefix("--port must be a port number") && $0.contains("\"70000\"") })
        #expect(found.contains { $0.hasPrefix("--max-frame-bytes must be a size such as 4 MiB") })
        #expect(found.contains { $0.hasPrefix("--idle-timeout must be a duration") })
        #expect(found.contains { $0.hasPrefix("CLOAK_MAX_CONNECTIONS must be a whole number of at least 1") })
        #expect(found.contains { $0.hasPrefix("CLOAK_VERIFY_CHANGE_SET_SIGNATURES must be true or false") })
        #expect(found.contains { $0.hasPrefix("CLOAK_LOG_FORMAT must be text or json") })
        for sentence in found { #expect(!looksLikeASwiftValue(sentence), "\(sentence)") }
    }

    @Test func unknownFlagsAndKeysAreRefusedWithASuggestion() async throws {
        #expect(await problems(["--max-frame-byte", "1 MiB"]) == [
            "--max-frame-byte is not an option of this command; did you mean --max-frame-bytes? (see --help)"
        ])
        try await withFile(#"{"maxFrameByte": "1 MiB"}"#) { path in
            let found = await problems(file: path)
            #expect(found.count == 1 && found[0].contains("unknown key \"maxFrameByte\"; did you mean maxFrameBytes?"))
        }
        try await withFile("port = 8080") { path in
            #expect(await problems(file: path).first?.contains("is not a JSON object") == true)
        }
        #expect(await problems(file: "/nonexistent/cloak.json") == [
            "The config file /nonexistent/cloak.json does not exist; check the --config path."
        ])
    }

    @Test func settingsThatDependOnEachOtherAreChecked() async {
        let tls = await problems(["--tls-cert", "/nonexistent/cert.pem"])
        #expect(tls.count == 2)
        #expect(tls.contains { $0.contains("/nonexistent/cert.pem, which does not exist") })
        #expect(tls.contains("--tls-cert and --tls-key go together: give both for wss://, or neither for ws://."))
        let frames = await problems(["--max-change-set-bytes", "8 MiB"])
        #expect(frames.count == 1 && frames[0].hasPrefix("A change set must fit in a frame"))
        #expect(frames.first?.contains("(now 8 MiB)") == true && frames.first?.contains("(now 4 MiB)") == true)
        #expect(await problems(["--mailbox-ttl", "1h"]).first?.contains("at most 10m") == true)
    }

    @Test func sizesAndDurationsAreReadTheWayPeopleWriteThem() async throws {
        let settings = try await load([
            "--max-account-bytes", "500 MB", "--max-total-bytes", "2 TiB", "--handshake-timeout", "1m30s",
            "--compact-every", "6h", "--trusted-proxies", "10.0.0.2, ::1",
        ])
        #expect(settings.http.sync.limits.maxAccountBytes == 500_000_000)
        #expect(settings.http.sync.maxTotalStoredBytes == 2 << 40)
        #expect(settings.http.sync.handshakeTimeoutMs == 90_000)
        #expect(settings.http.compactEveryMs == 6 * 3_600_000)
        #expect(settings.http.trustedProxies == ["10.0.0.2", "::1"])
        #expect(await problems(["--trusted-proxies", "lb.internal"]).count == 1)
    }

    @Test func helpLinesShowTheDefaultAndTheVariable() {
        let line = Setting.all.first { $0.key == "maxFrameBytes" }?.helpLine ?? ""
        #expect(line.hasPrefix("  --max-frame-bytes SIZE  (CLOAK_MAX_FRAME_BYTES; default: 4 MiB)\n"))
        #expect(Setting.all.map(\.variable).contains("CLOAK_DATABASE_PASSWORD_FILE"))
        #expect(Set(Setting.all.map(\.key)).count == Setting.all.count)
    }
}

/// Whether text reads like a Swift value (`invalidLocation(`, `Error(`) rather than a sentence.
func looksLikeASwiftValue(_ text: String) -> Bool {
    text.range(of: #"[A-Za-z_][A-Za-z0-9_]*\("#, options: .regularExpression) != nil
}
