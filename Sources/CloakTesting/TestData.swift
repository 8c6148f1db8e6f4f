public import Foundation

/// Locates the committed test fixtures under `TestData/` (Wycheproof vectors, editing traces)
/// and the protocol vectors under `Protocol/vectors/`, relative to this source file so tests
/// work from any clone and any working directory.
///
/// ```swift
/// let json = try TestData.load("wycheproof/ed25519_test.json")
/// ```
public enum TestData {
    /// The repository root (two levels above `Sources/CloakTesting`).
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // CloakTesting
            .deletingLastPathComponent()  // Sources
            .deletingLastPathComponent()
    }

    /// A file under `TestData/`.
    public static func url(_ relativePath: String) -> URL {
        repositoryRoot.appendingPathComponent("TestData").appendingPathComponent(relativePath)
    }

    /// The bytes of a file under `TestData/`; throws if it is missing so a test can never pass
    /// by silently running zero cases.
    public static func load(_ relativePath: String) throws -> Data {
        try Data(contentsOf: url(relativePath))
    }

    /// Decompresses a `.gz` fixture with the system `gzip`, which every Debian machine has.
    public static func loadGzip(_ relativePath: String) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-dc", url(relativePath).path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: relativePath])
        }
        return data
    }

    /// Writes one line to standard error: how tests report counts (the tidy check bans
    /// `print(` outside executables).
    public static func report(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
