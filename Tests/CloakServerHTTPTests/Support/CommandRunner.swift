import CloakTesting
import Foundation

/// Runs the `cloak-server` executable to completion (for its command-line tests) and returns its
/// exit status, standard output and standard error. Blocking reads run on their own thread.
func runCloakServer(
    _ arguments: [String], environment: [String: String] = [:], input: String? = nil, timeout: Duration = .seconds(60)
) async throws -> (status: Int32, output: String, errors: String) {
    let process = Process()
    process.executableURL = try ServerProcess.binary()
    process.arguments = arguments
    // Only what the test gives: no CLOAK_… variable of the machine leaks in.
    var base = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CLOAK_") }
    base.merge(environment) { $1 }
    process.environment = base
    let output = Pipe()
    let errors = Pipe()
    let stdin = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try? stdin.fileHandleForWriting.close()
    let deadline = Task {
        try await Task.sleep(for: timeout)
        process.terminate()
    }
    let result = try await onOwnThread {
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, out, err)
    }
    deadline.cancel()
    return result
}
