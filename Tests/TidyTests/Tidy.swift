import Foundation

/// The repository's style checks (STYLE.md "ban list" and the who-may-import-whom table),
/// run as ordinary tests so `scripts/test` and CI cannot skip them.
///
/// Rules, each with the reason:
/// - no ambient `Date()`, `UUID()` or `.random(` without `using:` in the sans-IO cores:
///   time and randomness are injected so the simulator can replay a run from its seed;
/// - no clocks, sleeps, threads or queues (`ContinuousClock`, `Task.sleep`, `Thread`,
///   `DispatchQueue`, `NSCondition`) in the cores outside their adapter folders
///   (``adapterPaths``): the simulator drives the cores on one thread under a virtual clock;
/// - the client core writes no SQL: only its store adapter imports GRDB;
/// - no `print(` outside executables: libraries log through swift-log (tests report through
///   `TestData.report`);
/// - no `try!` anywhere: bad input must become a typed error, never a trap;
/// - no `==`/`!=` on secret-looking operands in Sources: secrets and MACs compare in constant
///   time (`ConstantTime.equals`, `SecretBytes ==`);
/// - imports follow the module table below (the server never imports CloakCRDT, cores never
///   import the NIO/Hummingbird adapters).
/// A line can opt out with a trailing `// tidy:allow <rule>` comment that says why.
struct Tidy {
    struct Violation: CustomStringConvertible, Equatable {
        let file: String
        let line: Int
        let rule: String
        var description: String { "\(file):\(line): \(rule)" }
    }

    /// Modules whose code must stay sans-IO and deterministic.
    static let cores: Set<String> = [
        "CloakCrypto", "CloakProtocol", "CloakCRDT", "CloakClient", "CloakServer", "CloakSQLite", "CloakAgent",
    ]
    /// Executable targets (the only places `print(` is allowed).
    static let executables: Set<String> = [
        "cloak-server", "cloak", "cloak-vectors", "cloak-sim", "cloak-conformance", "cloak-agent",
    ]
    /// Files of the core modules that are adapters (I/O, threads, real time), each with why.
    static let adapterPaths: [String] = [
        "Sources/CloakClient/API/",  // the async facade: tasks, timers, connections
        "Sources/CloakClient/Adapters/",  // SQLite store, threaded verifier, system clock, secret files
        "Sources/CloakServer/Storage/",  // SQLite and PostgreSQL stores, WAL checkpoints
        "Sources/CloakServer/Core/StoreLoops.swift",  // the async loops that run store work for the core
        "Sources/CloakAgent/Adapters/",  // the assistant's Cloak client, model requests over HTTP, timers
    ]

    /// Which of our modules (and which outside libraries) each module may import.
    static let allowedImports: [String: Set<String>] = [
        "CloakCrypto": ["CSodium", "Synchronization"],
        "CloakProtocol": ["CloakCrypto", "SwiftProtobuf"],
        "CloakCRDT": [],
        "CloakSQLite": ["GRDB", "GRDBSQLite"],
        "CloakClient": ["CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakSQLite", "SwiftProtobuf", "GRDB", "Logging",
                        "Synchronization"],
        "CloakServer": ["CloakCrypto", "CloakProtocol", "CloakSQLite", "GRDB", "PostgresNIO", "Logging", "Metrics", "NIOCore",
                        "OrderedCollections",
                        "Synchronization"],
        "CloakServerHTTP": ["CloakServer", "CloakProtocol", "CloakCrypto", "Hummingbird", "HummingbirdTLS",
                            "HummingbirdWebSocket", "NIOCore", "NIOSSL", "Logging", "Metrics", "Prometheus",
                            "ServiceLifecycle", "Synchronization", "HTTPTypes", "WSCore", "NIOWebSocket", "CMalloc",
                            "UnixSignals"],
        "CloakTransport": ["CloakClient", "CloakProtocol", "CloakCrypto", "WSClient", "WSCore", "NIOCore", "NIOPosix",
                           "NIOSSL", "NIOWebSocket",
                           "Logging", "Synchronization"],
        // Seeded and fixed random sources wrap libsodium's deterministic stream directly.
        "CloakTesting": ["CloakCrypto", "CSodium", "Logging", "PostgresNIO", "Synchronization"],
        "CloakServerApp": ["CloakServer", "CloakServerHTTP", "CloakProtocol", "CloakCrypto", "Configuration", "Logging",
                           "Synchronization"],
        // The vector generator links no adapter; no app-facing module may import it (it is in
        // none of their lists).
        // Both take their fixed nonces and seeds from CloakTesting's random sources.
        "CloakVectors": ["CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakTesting", "SwiftProtobuf"],
        "CloakConformance": ["CloakCrypto", "CloakProtocol", "CloakTesting", "SwiftProtobuf", "WSClient", "WSCore", "NIOCore",
                             "NIOWebSocket", "Logging", "Synchronization"],
        // The assistant worker: its core decides, its adapters talk to the Cloak client and the
        // model's HTTP endpoint.
        "CloakAgent": ["CloakClient", "CloakCRDT", "CloakProtocol", "AsyncHTTPClient", "NIOCore", "NIOHTTP1", "Logging"],
        "CloakSimulation": ["CloakAgent", "CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakServer", "CloakTesting",
                            "CloakServerHTTP", "CloakTransport", "Logging", "Synchronization"],
        // Executables.
        "cloak-server": ["CloakServer", "CloakServerApp", "CloakServerHTTP", "CloakProtocol", "ArgumentParser", "Logging", "NIOCore",
                         "NIOPosix", "ServiceLifecycle", "UnixSignals"],
        "cloak": ["CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakTransport", "ArgumentParser", "Logging"],
        "cloak-vectors": ["CloakVectors", "CloakProtocol", "CloakCrypto", "ArgumentParser"],
        "cloak-agent": ["CloakAgent", "CloakClient", "CloakCrypto", "CloakProtocol", "CloakTransport", "ArgumentParser",
                        "Logging"],
        "cloak-conformance": ["CloakConformance", "CloakProtocol", "ArgumentParser", "Logging"],
        "cloak-sim": ["CloakSimulation", "CloakClient", "CloakServer", "CloakServerHTTP", "CloakTransport", "ArgumentParser",
                      "Logging"],
        // Tests: each target tests its module with the support library; the server's tests
        // never import CloakCRDT, the CRDT's import nothing else of ours.
        "CloakCryptoTests": ["CloakCrypto", "CSodium", "CloakTesting", "Testing"],
        // The vectors cover the conversation encodings, so their tests read them with CloakCRDT.
        "CloakProtocolTests": ["CloakProtocol", "CloakCrypto", "CloakCRDT", "CloakTesting", "CloakVectors", "SwiftProtobuf",
                               "Testing"],
        "CloakCRDTTests": ["CloakCRDT", "CloakTesting", "Testing"],
        "CloakClientTests": ["CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakTesting", "Logging",
                             "Synchronization", "Testing"],
        "CloakServerTests": ["CloakServer", "CloakCrypto", "CloakProtocol", "CloakSQLite", "CloakSimulation", "CloakTesting",
                             "GRDB", "Logging", "PostgresNIO", "Synchronization", "Testing"],
        "CloakServerHTTPTests": ["CloakServerHTTP", "CloakServer", "CloakCrypto", "CloakProtocol", "CloakTesting", "Logging",
                                 "NIOCore", "NIOHTTP1", "NIOPosix", "NIOSSL", "NIOWebSocket", "ServiceLifecycle",
                                 "Synchronization", "Testing"],
        // FoundationXML: the report tests parse the HTML page as XML.
        "CloakSimulationTests": ["CloakSimulation", "CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakServer",
                                 "CloakTesting", "FoundationXML", "Logging", "Testing"],
        "EndToEndTests": ["CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakServer", "CloakServerHTTP",
                          "CloakSimulation", "CloakTesting", "CloakTransport", "CloakConformance", "Logging", "Synchronization",
                          "Testing"],
        "CloakServerAppTests": ["CloakServerApp", "CloakServer", "CloakServerHTTP", "CloakProtocol", "CloakTesting",
                                "Logging", "Synchronization", "Testing"],
        "CloakAgentTests": ["CloakAgent", "CloakClient", "CloakCRDT", "CloakCrypto", "CloakProtocol", "CloakServer",
                            "CloakServerHTTP", "CloakTransport", "CloakTesting", "Hummingbird", "HTTPTypes", "NIOCore",
                            "Logging", "Synchronization", "Testing"],
        "TidyTests": ["Testing"],
    ]
    /// Imports every module may use.
    static let universalImports: Set<String> = ["Foundation", "FoundationEssentials", "Glibc", "Dispatch", "_Concurrency"]

    static func check(module: String, file: String, text: String) -> [Violation] {
        var violations: [Violation] = []
        let isCore = cores.contains(module)
        let isAdapter = adapterPaths.contains { file.hasPrefix($0) }
        let isExecutable = executables.contains(module)
        if allowedImports[module] == nil {
            violations.append(Violation(file: file, line: 1, rule: "\(module) is missing from the import table"))
        }
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(rawLine)
            let code = stripComment(line)
            func flag(_ rule: String) {
                if !line.contains("tidy:allow") { violations.append(Violation(file: file, line: index + 1, rule: rule)) }
            }
            if code.contains("try!") { flag("try! traps on bad input") }
            if !isExecutable, code.range(of: #"(^|[^\w.])print\("#, options: .regularExpression) != nil {
                flag("print( outside an executable")
            }
            if isCore {
                if code.contains("Date()") { flag("ambient Date() in a core") }
                if code.contains("UUID()") { flag("ambient UUID() in a core") }
                if code.contains(".random("), !code.contains("using:") { flag("ambient .random( in a core") }
                if code.range(of: secretComparison, options: .regularExpression) != nil {
                    flag("== on secret bytes (use ConstantTime.equals)")
                }
            }
            if isCore, !isAdapter {
                if code.contains("ContinuousClock") || code.contains("SuspendingClock") { flag("real clock in a core") }
                if code.contains("Task.sleep") { flag("sleep in a core") }
                if code.range(of: #"\bThread\b|DispatchQueue|NSCondition|pthread_"#, options: .regularExpression) != nil {
                    flag("thread in a core")
                }
                if module == "CloakClient", let imported = importedModule(code), ["GRDB", "CloakSQLite"].contains(imported) {
                    flag("SQL in the client core (use the ClientStore protocol)")
                }
            }
            if let imported = importedModule(code), let allowed = allowedImports[module],
                !allowed.contains(imported), !universalImports.contains(imported)
            {
                flag("\(module) may not import \(imported)")
            }
        }
        return violations
    }

    static let secretComparison =
        #"(copyBytes\(\)|\b\w*([sS]ecret|[sS]eed|[mM]ac|MAC|[cC]ommitment|[tT]ag)\b)\s*[!=]=[^=]|[!=]=\s*\w*(\.copyBytes\(\)|([sS]ecret|[sS]eed|[cC]ommitment|MAC)\b(?!\.))"#

    static func importedModule(_ code: String) -> String? {
        let words = code.split(separator: " ").map(String.init)
        guard let i = words.firstIndex(of: "import"), i + 1 < words.count else { return nil }
        let before = words[..<i]
        // `@_spi(Group)` imports are imports too (they must not escape the table).
        guard before.allSatisfy({
            ["public", "internal", "package", "private", "fileprivate", "@testable", "@preconcurrency", "@_exported"]
                .contains($0) || $0.hasPrefix("@_spi(")
        })
        else { return nil }
        var name = words[i + 1]
        if ["struct", "class", "enum", "func", "protocol", "var", "let", "typealias"].contains(name), i + 2 < words.count {
            name = words[i + 2]
        }
        return String(name.split(separator: ".").first ?? "")
    }

    static func stripComment(_ line: String) -> String {
        guard let range = line.range(of: "//") else { return line }
        return String(line[..<range.lowerBound])
    }

    /// The repository root, from this file's location.
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// (module, relative path, contents) of every Swift file in Sources/ and Simulator/ and Tests/.
    static func sourceFiles() -> [(module: String, path: String, text: String)] {
        var result: [(String, String, String)] = []
        let fm = FileManager.default
        for top in ["Sources", "Simulator", "Tests"] {
            let base = root.appendingPathComponent(top)
            guard let modules = try? fm.contentsOfDirectory(atPath: base.path) else { continue }
            // The checker's own fixtures spell out the banned forms on purpose.
            for module in modules.sorted() where module != "TidyTests" {
                let dir = base.appendingPathComponent(module)
                guard let walker = fm.enumerator(atPath: dir.path) else { continue }
                while let item = walker.nextObject() as? String {
                    guard item.hasSuffix(".swift"), !item.contains("Generated/") else { continue }
                    let url = dir.appendingPathComponent(item)
                    guard let text = try? String(contentsOf: url, encoding: .utf8) else { continue }
                    result.append((module, "\(top)/\(module)/\(item)", text))
                }
            }
        }
        return result
    }
}
