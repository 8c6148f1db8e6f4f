public import Foundation

/// One scenario file of `Protocol/conformance/` (its format: that directory's README).
public struct Scenario: Sendable {
    /// The scenario's name (also mixed into every derived key, so scenarios never collide).
    public let name: String
    /// Where it was read from.
    public let file: String
    /// The `requires` object (empty when absent).
    let requires: [String: JSONValue]
    /// The steps, in order.
    let steps: [JSONValue]
    /// The `covers` object, for coverage checks.
    public let covers: [String: JSONValue]

    /// Reads a scenario file.
    public init(contentsOf url: URL) throws {
        let json = try JSONValue.parse(Data(contentsOf: url))
        let members = json.members
        guard let name = members["name"]?.string, case .array(let steps)? = members["steps"] else {
            throw ConformanceFailure("\(url.lastPathComponent): a scenario needs a name and steps")
        }
        self.name = name
        self.file = url.lastPathComponent
        self.requires = members["requires"]?.members ?? [:]
        self.steps = steps
        self.covers = members["covers"]?.members ?? [:]
    }

    /// Every scenario file of a directory (or the one file given), by file name.
    public static func load(_ path: String) throws -> [Scenario] {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConformanceFailure("\(path) does not exist")
        }
        guard isDirectory.boolValue else { return [try Scenario(contentsOf: url)] }
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".json") }.sorted()
        return try names.map { try Scenario(contentsOf: url.appendingPathComponent($0)) }
    }
}

/// Why a scenario failed (or could not be read): a message for people, naming the step.
public struct ConformanceFailure: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public let description: String

    /// A failure with a message.
    public init(_ description: String) {
        self.description = description
    }
}

/// The server policy a runner is told about (`--setting name=value`), with PROTOCOL.md §24's
/// defaults for everything not given.
public struct ConformanceSettings: Sendable {
    /// The values by name.
    public private(set) var values: [String: JSONValue] = [
        "handshake_timeout_ms": .integer(30_000),
        "idle_timeout_ms": .integer(120_000),
        "max_connections_per_account": .integer(64),
        "max_mailbox_bytes": .integer(1 << 20),
        "max_outbound_queue_bytes": .integer(8 << 20),
        "recovery_fetches_per_window": .integer(20),
        "recovery_authentications_per_window": .integer(5),
        "recovery_keys": .bool(false),
        "recovery_lockout_after": .integer(10),
        "verify_change_set_signatures": .bool(false),
    ]

    /// The defaults.
    public init() {}

    /// Sets one value from its text: `true`/`false` or an integer.
    public mutating func set(_ name: String, _ text: String) throws {
        guard values[name] != nil else { throw ConformanceFailure("unknown setting \(name)") }
        if let flag = Bool(text) {
            values[name] = .bool(flag)
        } else if let number = Int64(text) {
            values[name] = .integer(number)
        } else {
            throw ConformanceFailure("setting \(name) must be an integer or true/false, not \(text)")
        }
    }
}

/// How one scenario ended.
public enum ScenarioOutcome: Sendable, Equatable {
    /// Every step passed.
    case passed
    /// The server does not meet the scenario's requirements.
    case skipped(String)
    /// A step failed.
    case failed(step: String, reason: String)
}
