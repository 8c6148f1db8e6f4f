import CloakTesting
import Foundation
import Testing

/// What can be checked of Deploy/ on a machine without Docker: the systemd unit (with
/// systemd-analyze, when the machine has it) and the Dockerfile's and compose file's references.
@Suite struct DeployTests {
    static let deploy = SettingsTests.root.appendingPathComponent("Deploy")
    static let analyzer = "/usr/bin/systemd-analyze"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: analyzer), "systemd-analyze is not installed"))
    func theSystemdUnitVerifiesAndIsSandboxed() async throws {
        let unit = try String(contentsOf: Self.deploy.appendingPathComponent("cloak-server.service"), encoding: .utf8)
        for directive in ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=", "UMask=0077"] {
            #expect(unit.contains(directive), "\(directive)")
        }
        // verify needs ExecStart to exist: point it at a binary every machine has.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("cloak-server.service")
        try Data(unit.replacingOccurrences(of: "/usr/local/bin/cloak-server", with: "/bin/true").utf8).write(to: copy)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.analyzer)
        process.arguments = ["verify", copy.path]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = try await onOwnThread {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return text
        }
        #expect(process.terminationStatus == 0, "\(message)")
        #expect(message.isEmpty, "\(message)")
    }

    @Test func theImageAndTheComposeFileUseTheServersOwnSettings() throws {
        let dockerfile = try String(contentsOf: Self.deploy.appendingPathComponent("Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("-static-stdlib") && dockerfile.contains("USER cloak"))
        #expect(dockerfile.split(separator: "\n").filter { $0.hasPrefix("FROM ") }.count == 2, "a build stage and a runtime stage")
        let compose = try String(contentsOf: Self.deploy.appendingPathComponent("compose.yaml"), encoding: .utf8)
        for flag in ["--database-password-file", "--trusted-proxies", "--compact-every"] {
            #expect(compose.contains(flag), "\(flag)")
        }
        let nginx = try String(contentsOf: Self.deploy.appendingPathComponent("nginx.conf"), encoding: .utf8)
        #expect(nginx.contains("proxy_set_header Upgrade") && nginx.contains("X-Forwarded-For"))
    }
}
