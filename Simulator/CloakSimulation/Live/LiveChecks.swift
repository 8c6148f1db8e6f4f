@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol
import Foundation

/// The live run's end-of-run checks: convergence (every device of an account shows the same
/// state), durability (every operation an API call accepted is present on every device of its
/// account) and confidentiality (no canary in the server's database, the devices' stores or
/// their logs).
enum LiveChecks {
    /// A device's state as its user sees it: the library's and every conversation's state hash,
    /// title and library state, and every rendered message (id, text, reactions). Equal lists
    /// mean equal state.
    static func fingerprint(_ engine: ClientEngine) -> [String] {
        var lines = ["library \(engine.stateHash(of: .library) ?? [])"]
        for summary in engine.conversations() {
            lines.append("\(summary.id) \(engine.stateHash(of: summary.id) ?? []) \(summary.title ?? "-") \(summary.state)")
            if let view = engine.conversation(summary.id) {
                lines.append(view.messages.map { "\($0.id):\($0.text):\($0.reactions.count)" }.joined(separator: "|"))
            }
        }
        return lines
    }

    /// Whether every device of `devices` is synced and shows the same state.
    static func converged(_ devices: [LiveDevice]) async -> Bool {
        var reference: [String]?
        for device in devices {
            let (synced, print) = await device.client.withEngine { engine in (engine.isSynced, fingerprint(engine)) }
            guard synced, reference.map({ $0 == print }) ?? true else { return false }
            reference = print
        }
        return true
    }

    /// Polls every account until it converged or `timeoutSeconds` passed; returns, per account,
    /// the milliseconds from `since` to the first poll that found it converged.
    static func awaitConvergence(
        _ accounts: [[LiveDevice]], recorder: LiveRecorder, since: Double, timeoutSeconds: Double,
        progress: @Sendable (Int) -> Void
    ) async -> [Double?] {
        var converged: [Double?] = Array(repeating: nil, count: accounts.count)
        let deadline = since + timeoutSeconds * 1_000
        while recorder.now() < deadline {
            for (index, devices) in accounts.enumerated() where converged[index] == nil {
                if await Self.converged(devices) { converged[index] = recorder.now() - since }
            }
            progress(converged.compactMap { $0 }.count)
            if converged.allSatisfy({ $0 != nil }) { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return converged
    }

    /// Every accepted operation that some device of its account does not show (at most
    /// `limit` descriptions) and how many there were.
    static func durability(_ accounts: [[LiveDevice]], operations: [AcceptedOperation], limit: Int = 20) async
        -> (failures: [String], count: Int)
    {
        let byAccount = Dictionary(grouping: operations, by: \.account)
        var failures: [String] = []
        var count = 0
        for devices in accounts {
            guard let account = devices.first?.account, let mine = byAccount[account] else { continue }
            for device in devices {
                let missing = await device.client.withEngine { engine in mine.compactMap { absence(of: $0, in: engine) } }
                count += missing.count
                for line in missing where failures.count < limit { failures.append("\(device.name): \(line)") }
            }
        }
        return (failures, count)
    }

    /// Why `operation` is not present in `engine`'s state, or nil when it is.
    static func absence(of operation: AcceptedOperation, in engine: ClientEngine) -> String? {
        let kind = operation.kind.rawValue
        guard let id = operation.message else {
            let known = engine.conversations().contains { $0.id == operation.conversation }
            return known ? nil : "lacks the conversation of a \(kind) operation (\(operation.token))"
        }
        guard let message = engine.message(id, in: operation.conversation) else {
            return "lacks the message of a \(kind) operation (\(operation.token))"
        }
        switch operation.kind {
        case .append, .stream, .branch, .edit:
            if !message.isDeleted, !message.text.contains(operation.token) {
                return "shows a message without the text of a \(kind) operation (\(operation.token))"
            }
        case .react:
            if !message.reactions.contains(where: { $0.emoji == operation.emoji }) {
                return "lacks a reaction (\(operation.token))"
            }
        case .delete:
            if !message.isDeleted { return "still shows a deleted message (\(message.id))" }
        case .create, .rename:
            break
        }
        return nil
    }

    /// Scans the server's database files, every file under the devices' store directory and
    /// the logs' findings for any `cloak-canary-` string, in every encoding a careless
    /// implementation might use (ADV-15).
    static func scanCanaries(serverFiles: [URL], clientRoot: URL, canaries: Int, logLeaks: [String]) -> LiveResult.CanaryScan {
        let scanner = CanaryPrefixScanner()
        var findings: [String] = []
        var serverBytes = 0
        for file in serverFiles {
            guard let bytes = try? Data(contentsOf: file) else { continue }
            serverBytes += bytes.count
            if let encoding = scanner.find(in: [Array(bytes)]) { findings.append("\(file.path) (\(encoding))") }
        }
        var clientBytes = 0
        let clientFiles = CanaryScanner.files(under: clientRoot)
        for file in clientFiles {
            guard let bytes = try? Data(contentsOf: file) else { continue }
            clientBytes += bytes.count
            if let encoding = scanner.find(in: [Array(bytes)]) { findings.append("\(file.path) (\(encoding))") }
        }
        findings += logLeaks.map { "a device's log line: \($0.prefix(200))" }
        return LiveResult.CanaryScan(
            canaries: canaries, serverBytes: serverBytes, serverScanned: !serverFiles.isEmpty, clientBytes: clientBytes,
            clientFiles: clientFiles.count, findings: findings)
    }
}
