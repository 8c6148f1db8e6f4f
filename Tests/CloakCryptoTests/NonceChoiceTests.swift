import Foundation
import Testing

/// ADV-14 at the API boundary: an app that imports CloakCrypto normally (no
/// `@_spi(Randomness)`) can neither pass a random source of its own (fixed or seeded) nor choose
/// a nonce. Each app below is type-checked by `swiftc` against the modules this test binary was
/// built with; the control app must compile, so a failure is the API's refusal, not the setup.
@Suite("ADV-14 an app cannot choose randomness or a nonce")
struct NonceChoiceTests {
    /// `swiftc -typecheck` of `source` against the built modules: the error lines, or nil when
    /// it type-checks.
    static func typecheck(_ source: String) throws -> [String]? {
        let build = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let modules = build.appendingPathComponent("Modules")
        let sodium = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/CSodium").standardized
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-app-\(UInt64.random(in: 0..<UInt64.max)).swift")
        try Data(source.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swiftc", "-typecheck", "-I", modules.path, "-I", sodium.path, file.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let errors = text.split(separator: "\n").map(String.init).filter { $0.contains("error:") }
        return process.terminationStatus == 0 ? nil : (errors.isEmpty ? [text] : errors)
    }

    @Test("the control app, sealing with the API's own randomness, type-checks")
    func controlCompiles() throws {
        let errors = try Self.typecheck(
            """
            import CloakCrypto
            let box = XChaCha20Poly1305.seal([1, 2, 3], key: SymmetricKey.random(), associatedData: [])
            _ = box.nonce.count
            """)
        #expect(errors == nil, "\(errors ?? [])")
    }

    @Test(
        "an app passing a source of its own, a fixed one, or a nonce does not compile",
        arguments: [
            // The system source by name: SPI, not visible.
            "let box = XChaCha20Poly1305.seal([1], key: SymmetricKey.random(), associatedData: [], using: SystemRandom())",
            // A fixed source of the app's own: the protocol is SPI, so it cannot be named.
            """
            final class Fixed: RandomSource, @unchecked Sendable {
                func fill(_ buffer: UnsafeMutableRawBufferPointer) { for i in buffer.indices { buffer[i] = 0 } }
            }
            let key = SymmetricKey.random(using: Fixed())
            """,
            // A chosen nonce: no such parameter.
            "let box = XChaCha20Poly1305.seal([1], key: SymmetricKey.random(), associatedData: [], nonce: [UInt8](repeating: 0, count: 24))",
        ])
    func choosingDoesNotCompile(_ body: String) throws {
        let errors = try Self.typecheck("import CloakCrypto\n" + body + "\n")
        #expect(errors != nil, "an app could choose: \(body)")
    }
}
