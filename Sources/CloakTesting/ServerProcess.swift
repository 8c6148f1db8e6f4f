public import Foundation
import Synchronization

/// The real `cloak-server` executable in a child process on a free loopback port: kill -9
/// durability tests, and the conformance suite run against the shipped binary.
///
/// ```swift
/// let server = try await ServerProcess.start(database: "memory:", extraArguments: ["--idle-timeout", "2s"])
/// defer { Task { await server.terminate() } }
/// let url = "ws://127.0.0.1:\(server.port)/v1/sync"
/// ```
public final class ServerProcess: Sendable {
    /// The child process.
    public let process: Process
    /// The port it listens on.
    public let port: Int

    private init(process: Process, port: Int) {
        self.process = process
        self.port = port
    }

    /// The built `cloak-server` (or another of the package's executables, by `name`) next to
    /// the test bundle (`swift build --build-tests` builds them).
    public static func binary(named name: String = "cloak-server") throws -> URL {
        let root = TestData.repositoryRoot
        var candidates: [URL] = []
        if let executable = Bundle.main.executableURL { candidates.append(executable.deletingLastPathComponent()) }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        candidates.append(root.appendingPathComponent(".build/debug"))
        candidates.append(root.appendingPathComponent(".build/x86_64-unknown-linux-gnu/debug"))
        for directory in candidates {
            let binary = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: binary.path) { return binary }
        }
        throw ServerProcessError(
            "\(name) is not built next to the tests (looked in \(candidates.map(\.path))); run swift build --build-tests"
        )
    }

    /// Starts `cloak-server serve` on a free port and waits (at most `timeout`) until it listens.
    public static func start(
        database: String, extraArguments: [String] = [], timeout: Duration = .seconds(30)
    )
        async throws -> ServerProcess
    {
        let process = Process()
        process.executableURL = try binary()
        // --create: a test's database is new on its first start (and found on later ones).
        process.arguments = ["serve", "--port", "0", "--database", database, "--log-level", "warning", "--create"]
            + extraArguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let lines = LineBuffer()
        output.fileHandleForReading.readabilityHandler = { handle in lines.append(handle.availableData) }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = lines.first(containing: "listening on"),
                let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
            {
                return ServerProcess(process: process, port: port)
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.terminate()
        throw ServerProcessError("cloak-server did not start")
    }

    /// SIGKILL: no shutdown code runs, unsynced writes are lost (as in a crash).
    public func kill9() async {
        kill(process.processIdentifier, SIGKILL)
        await waitForExit()
    }

    /// SIGTERM: graceful shutdown.
    public func terminate() async {
        process.terminate()
        await waitForExit()
    }

    private func waitForExit() async {
        for _ in 0..<1_500 where process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Why a server process could not be started.
public struct ServerProcessError: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Collects a child's stdout lines.
final class LineBuffer: Sendable {
    private let text = Mutex("")

    func append(_ data: Data) {
        text.withLock { $0 += String(decoding: data, as: UTF8.self) }
    }

    func first(containing needle: String) -> String? {
        text.withLock { $0.split(separator: "\n").first { $0.contains(needle) }.map(String.init) }
    }
}
