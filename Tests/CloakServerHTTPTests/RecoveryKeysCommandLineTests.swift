import CloakTesting
import Foundation
import Testing

/// `cloak-server recovery-keys rotate FILE` on the real executable: the file is rewritten in
/// place, private, with the older versions kept and the new one current (docs/operations.md).
@Suite(.timeLimit(.minutes(2))) struct RecoveryKeysCommandLineTests {
    @Test("rotate rewrites the key file privately, keeps the old version and makes the new one current")
    func rotateInPlace() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("recovery.keys").path
        let generated = try await runCloakServer(["recovery-keys", "generate"])
        #expect(generated.status == 0)
        #expect(FileManager.default.createFile(atPath: file, contents: Data(generated.output.utf8), attributes: [.posixPermissions: 0o600]))

        let oldLine = generated.output.split(separator: "\n").first { $0.hasPrefix("key 1 ") }.map(String.init) ?? "missing"
        let oldSeed = String(oldLine.split(separator: " ").last ?? "missing")
        let rotated = try await runCloakServer(["recovery-keys", "rotate", file])
        #expect(rotated.status == 0, "\(rotated.errors)")
        #expect(rotated.output.contains("version 2 added and current"))
        #expect(!rotated.output.contains(oldSeed) && !rotated.errors.contains(oldSeed))
        let checked = try await runCloakServer(["recovery-keys", "check", file])
        #expect(checked.output.contains("versions 1, 2; current 2"), "\(checked.output)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.contains(oldLine) && oldSeed.count == 64)
        let mode = (try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        #expect(!FileManager.default.fileExists(atPath: file + ".rotating"))

        // A broken file is refused with a sentence and left as it was.
        let broken = directory.appendingPathComponent("broken.keys").path
        #expect(FileManager.default.createFile(atPath: broken, contents: Data("cloak-recovery-keys 1\ncurrent 1\n".utf8)))
        let refused = try await runCloakServer(["recovery-keys", "rotate", broken])
        #expect(refused.status != 0 && refused.errors.contains("The recovery key file is not usable"), "\(refused.errors)")
        #expect(try String(contentsOfFile: broken, encoding: .utf8) == "cloak-recovery-keys 1\ncurrent 1\n")
    }
}
