import Foundation

/// One editing trace from josephg/editing-traces (TestData/traces), decompressed with the
/// system gzip and parsed with Foundation.
struct EditingTrace {
    struct Patch {
        var position: Int
        var deleted: Int
        var inserted: String
    }

    struct Transaction {
        var parents: [Int]
        var agent: Int
        var patches: [Patch]
    }

    var startContent: String
    var endContent: String
    var transactions: [Transaction]

    enum LoadError: Error {
        case missing(String)
        case gzipFailed(Int32)
        case malformed
    }

    /// `TestData/traces/<name>` relative to this file: Tests/CloakCRDTTests/Support → root.
    static func url(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("TestData/traces").appendingPathComponent(name)
    }

    static func load(_ name: String) throws -> EditingTrace {
        let path = url(name).path
        guard FileManager.default.fileExists(atPath: path) else { throw LoadError.missing(path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw LoadError.gzipFailed(process.terminationStatus) }
        return try parse(data)
    }

    private static func parse(_ data: Data) throws -> EditingTrace {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let end = root["endContent"] as? String, let txns = root["txns"] as? [[String: Any]]
        else { throw LoadError.malformed }
        var transactions: [Transaction] = []
        transactions.reserveCapacity(txns.count)
        for txn in txns {
            guard let patches = txn["patches"] as? [[Any]] else { throw LoadError.malformed }
            var parsed: [Patch] = []
            for patch in patches {
                guard patch.count == 3, let position = (patch[0] as? NSNumber)?.intValue,
                    let deleted = (patch[1] as? NSNumber)?.intValue, let inserted = patch[2] as? String
                else { throw LoadError.malformed }
                parsed.append(Patch(position: position, deleted: deleted, inserted: inserted))
            }
            let parents = (txn["parents"] as? [NSNumber])?.map(\.intValue) ?? []
            let agent = (txn["agent"] as? NSNumber)?.intValue ?? 0
            transactions.append(Transaction(parents: parents, agent: agent, patches: parsed))
        }
        return EditingTrace(
            startContent: root["startContent"] as? String ?? "", endContent: end, transactions: transactions)
    }
}
