import CloakCrypto
import CloakProtocol
import Foundation

/// A directive's value: bytes stay bytes until they are written into a frame (as base64) or
/// compared with a received field.
indirect enum Evaluated {
    case bytes([UInt8])
    case integer(Int64)
    case string(String)
    case bool(Bool)
    case null
    case array([Evaluated])
    case object([String: Evaluated])
    /// A message or a captured value, already in proto3 JSON form.
    case json(JSONValue)

    /// The proto3 JSON form.
    var json: JSONValue {
        switch self {
        case .bytes(let bytes): .string(Data(bytes).base64EncodedString())
        case .integer(let value): .integer(value)
        case .string(let value): .string(value)
        case .bool(let value): .bool(value)
        case .null: .null
        case .array(let items): .array(items.map(\.json))
        case .object(let members): .object(members.mapValues(\.json))
        case .json(let value): value
        }
    }

    var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .json(let value): value.integer
        default: nil
        }
    }
}

/// The evaluated arguments of a record directive.
struct Arguments {
    let values: [String: Evaluated]
    let directive: String

    var value: Evaluated { .object(values) }

    func string(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw ConformanceFailure("\(directive) needs \"\(key)\"") }
        return value
    }

    func optionalString(_ key: String) throws -> String? {
        switch values[key] {
        case nil: return nil
        case .string(let text)?: return text
        case .json(.string(let text))?: return text
        default: throw ConformanceFailure("\(directive): \"\(key)\" must be a string")
        }
    }

    func integer(_ key: String) throws -> Int64 {
        guard let value = try optionalInteger(key) else { throw ConformanceFailure("\(directive) needs \"\(key)\"") }
        return value
    }

    func optionalInteger(_ key: String) throws -> Int64? {
        guard let value = values[key] else { return nil }
        guard let integer = value.integer, integer >= 0 else {
            throw ConformanceFailure("\(directive): \"\(key)\" must be a non-negative integer")
        }
        return integer
    }

    func list(_ key: String) throws -> [Arguments] {
        switch values[key] {
        case nil: return []
        case .array(let items)?:
            return items.map { item in
                if case .object(let members) = item { return Arguments(values: members, directive: directive) }
                return Arguments(values: ["": item], directive: directive)
            }
        default: throw ConformanceFailure("\(directive): \"\(key)\" must be a list")
        }
    }

    /// `"tamper": "signature"`.
    var tampered: Bool {
        if case .string("signature")? = values["tamper"] { return true }
        return false
    }

    /// `"commit": false` builds without changing the model.
    var commits: Bool {
        if case .bool(false)? = values["commit"] { return false }
        return true
    }
}

/// Evaluates directives (README "Directives") against a scenario's model, settings and limits.
struct DirectiveContext {
    var model: ScenarioModel
    let settings: ConformanceSettings
    var limits: [String: Int64] = [:]
    var iterations: [Int64] = []

    static let defaultLimits: [String: Int64] = [
        "max_frame_bytes": 4 << 20, "max_change_sets_per_push": 256, "max_change_set_bytes": 1 << 20,
        "max_pushes_per_second": 200, "max_account_bytes": 8 << 30, "max_catch_up_batch": 1000,
    ]

    /// A directive object (one key starting with `$`), or nil for anything else.
    static func directive(_ value: JSONValue) -> (name: String, argument: JSONValue)? {
        guard case .object(let members) = value, members.count == 1, let (name, argument) = members.first,
            name.hasPrefix("$")
        else { return nil }
        return (name, argument)
    }

    /// Replaces every directive inside `value`; `nonce` is the sending connection's.
    mutating func evaluate(_ value: JSONValue, nonce: [UInt8]? = nil) throws -> Evaluated {
        if let (name, argument) = Self.directive(value) { return try apply(name, argument, nonce: nonce) }
        switch value {
        case .null: return .null
        case .bool(let flag): return .bool(flag)
        case .integer(let number): return .integer(number)
        case .double: throw ConformanceFailure("numbers in scenarios are integers")
        case .string(let text): return .string(text)
        case .array(let items): return .array(try items.map { try evaluate($0, nonce: nonce) })
        case .object(let members): return .object(try members.mapValues { try evaluate($0, nonce: nonce) })
        }
    }

    func limit(_ name: String) throws -> Int64 {
        if let announced = limits[name], announced > 0 { return announced }
        if let fallback = Self.defaultLimits[name] { return fallback }
        if case .integer(let value)? = settings.values[name] { return value }
        throw ConformanceFailure("unknown limit \(name)")
    }

    private mutating func integers(_ argument: JSONValue, nonce: [UInt8]?) throws -> [Int64] {
        guard case .array(let items) = argument else { throw ConformanceFailure("arithmetic takes a list") }
        return try items.map { item in
            guard let number = try evaluate(item, nonce: nonce).integer else {
                throw ConformanceFailure("arithmetic on a non-integer")
            }
            return number
        }
    }

    private mutating func apply(_ name: String, _ argument: JSONValue, nonce: [UInt8]?) throws -> Evaluated {
        switch name {
        case "$hex":
            guard let text = argument.string else { throw ConformanceFailure("$hex takes a string") }
            return .bytes(try Hex.decode(text))
        case "$utf8":
            return .bytes(Array((argument.string ?? "").utf8))
        case "$bytes":
            let args = try arguments(name, argument, nonce: nonce)
            return .bytes(
                [UInt8](repeating: UInt8(try args.optionalInteger("fill") ?? 0), count: Int(try args.integer("length")))
            )
        case "$limit":
            return .integer(try limit(argument.string ?? ""))
        case "$setting":
            guard let value = settings.values[argument.string ?? ""] else {
                throw ConformanceFailure("unknown setting")
            }
            return .json(value)
        case "$add": return .integer(try integers(argument, nonce: nonce).reduce(0, +))
        case "$mul": return .integer(try integers(argument, nonce: nonce).reduce(1, *))
        case "$sub", "$div":
            let values = try integers(argument, nonce: nonce)
            guard values.count == 2, name == "$sub" || values[1] != 0 else {
                throw ConformanceFailure("\(name) takes two")
            }
            return .integer(name == "$sub" ? values[0] - values[1] : values[0] / values[1])
        case "$i":
            guard let iteration = iterations.last else { throw ConformanceFailure("$i outside a repeat") }
            return .integer(iteration + (argument.integer ?? 0))
        case "$repeat":
            let members = argument.members
            guard let count = try evaluate(members["count"] ?? .null, nonce: nonce).integer, let item = members["value"]
            else {
                throw ConformanceFailure("$repeat needs a count and a value")
            }
            let value = try evaluate(item, nonce: nonce)
            return .array(Array(repeating: value, count: Int(max(0, count))))
        case "$var":
            guard let value = model.variables[argument.string ?? ""] else { throw ConformanceFailure("no variable") }
            return .json(value)
        default:
            return try identity(name, argument, nonce: nonce)
        }
    }

    private mutating func identity(_ name: String, _ argument: JSONValue, nonce: [UInt8]?) throws -> Evaluated {
        let text = argument.string ?? ""
        switch name {
        case "$device_id": return .bytes(try model.keys(text).id.bytes)
        case "$signing_key": return .bytes(try model.keys(text).signing.publicKey.bytes)
        case "$agreement_key": return .bytes(try model.keys(text).agreement.publicKey.bytes)
        case "$conversation_id": return .bytes(model.conversation(text).bytes)
        case "$mailbox_id": return .bytes(Array(model.derive("mailbox/\(text)").prefix(16)))
        case "$account_id": return .bytes(try model.account(text).log.account.bytes)
        case "$record": return .bytes(try model.record(text).bytes)
        case "$hash": return .bytes(try model.record(text).hash)
        default: return try record(name, argument, nonce: nonce)
        }
    }

    private mutating func record(_ name: String, _ argument: JSONValue, nonce: [UInt8]?) throws -> Evaluated {
        let args = try arguments(name, argument, nonce: nonce)
        switch name {
        case "$genesis", "$add_device", "$set_recovery", "$remove_device", "$grant_assistant":
            return .bytes(try model.entry(name, args))
        case "$change_set": return .bytes(try model.changeSet(args))
        case "$snapshot": return .json(try model.snapshot(args))
        case "$key_envelope": return .json(try model.keyEnvelope(args))
        case "$authenticate":
            guard let nonce else { throw ConformanceFailure("$authenticate outside a send") }
            return .json(try model.authenticate(args, nonce: nonce))
        case "$fetch_device_log":
            guard let nonce else { throw ConformanceFailure("$fetch_device_log outside a send") }
            return .json(try model.fetchDeviceLog(args, nonce: nonce))
        case "$recovery_blob":
            guard case .bytes(let parameters)? = args.values["kdf_parameters"] else {
                throw ConformanceFailure("$recovery_blob needs kdf_parameters bytes")
            }
            return .json(try model.recoveryBlob(args, parameters: parameters))
        case "$device_log":
            let entries = try model.account(try args.string("account")).log.entries
            let from = Int(try args.optionalInteger("from") ?? 0)
            return .array(entries.dropFirst(from).map { .bytes($0.wire) })
        default:
            throw ConformanceFailure("unknown directive \(name)")
        }
    }

    private mutating func arguments(_ name: String, _ argument: JSONValue, nonce: [UInt8]?) throws -> Arguments {
        guard case .object(let members) = argument else { throw ConformanceFailure("\(name) takes an object") }
        return Arguments(values: try members.mapValues { try evaluate($0, nonce: nonce) }, directive: name)
    }
}
