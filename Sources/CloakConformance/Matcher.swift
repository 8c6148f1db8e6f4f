import Foundation

/// Matches a pattern (README "Frames and patterns") against a received frame's proto3 JSON.
struct Matcher {
    var context: DirectiveContext

    /// Nil when `received` matches `pattern` at `path`, else why not.
    mutating func mismatch(_ pattern: JSONValue, _ received: JSONValue?, path: String) throws -> String? {
        if let (name, argument) = DirectiveContext.directive(pattern) {
            switch name {
            case "$any": return nil
            case "$nonzero": return Self.isDefault(received) ? "\(path) is empty or zero" : nil
            case "$length":
                guard let expected = try context.evaluate(argument).integer else {
                    throw ConformanceFailure("$length takes an integer")
                }
                let count = Self.count(received)
                return count == Int(expected) ? nil : "\(path) has \(count) elements or bytes, expected \(expected)"
            case "$contains":
                guard case .array(let items)? = received else { return "\(path) is not a list" }
                for item in items where try mismatch(argument, item, path: path) == nil { return nil }
                return "no element of \(path) matches"
            case "$capture":
                context.model.variables[argument.string ?? ""] = received ?? .null
                return nil
            default:
                return compare(try context.evaluate(pattern), received, path: path)
            }
        }
        switch pattern {
        case .object(let members):
            let fields = received?.members ?? [:]
            if let received, case .object = received {
            } else if received != nil {
                return "\(path) is not a message"
            }
            for (key, value) in members.sorted(by: { $0.key < $1.key }) {
                if let reason = try mismatch(value, fields[key], path: path + "." + key) { return reason }
            }
            return nil
        case .array(let items):
            let got: [JSONValue]
            if case .array(let values)? = received { got = values } else { got = [] }
            guard got.count == items.count else { return "\(path) has \(got.count) elements, expected \(items.count)" }
            for (index, item) in items.enumerated() {
                if let reason = try mismatch(item, got[index], path: "\(path)[\(index)]") { return reason }
            }
            return nil
        default:
            return compare(try context.evaluate(pattern), received, path: path)
        }
    }

    /// Compares an evaluated value with a received field (absent: the field's default).
    func compare(_ expected: Evaluated, _ received: JSONValue?, path: String) -> String? {
        switch expected {
        case .bytes(let bytes):
            let got = received?.string.flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? []
            return got == bytes ? nil : "\(path) holds other bytes (\(got.count) bytes, expected \(bytes.count))"
        case .integer(let value):
            let got = received?.integer ?? 0
            return got == value ? nil : "\(path) is \(got), expected \(value)"
        case .bool(let value):
            let got: Bool
            if case .bool(let flag)? = received { got = flag } else { got = false }
            return got == value ? nil : "\(path) is \(got), expected \(value)"
        case .string(let value):
            let got = received?.string ?? ""
            if got == value || (received == nil && value.hasSuffix("_UNSPECIFIED")) { return nil }
            return "\(path) is \"\(got)\", expected \"\(value)\""
        case .null:
            return Self.isDefault(received) ? nil : "\(path) is set"
        case .array, .object, .json:
            let want = Self.normalized(expected.json)
            if Self.normalized(received ?? .null) == want { return nil }
            return "\(path) is \(received?.text ?? "absent"), expected \(want.text)"
        }
    }

    static func isDefault(_ value: JSONValue?) -> Bool {
        switch value {
        case nil, .null?: true
        case .bool(let flag)?: !flag
        case .integer(let number)?: number == 0
        case .double(let number)?: number == 0
        case .string(let text)?: text.isEmpty || text == "0" || text.hasSuffix("_UNSPECIFIED")
        case .array(let items)?: items.isEmpty
        case .object(let members)?: members.values.allSatisfy { isDefault($0) }
        }
    }

    /// Drops default-valued members (proto3 JSON may or may not print them) and reads integer
    /// strings as numbers, so two JSON forms of one message compare equal.
    static func normalized(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(members.filter { !isDefault($0.value) }.mapValues(normalized))
        case .array(let items):
            return .array(items.map(normalized))
        case .string(let text):
            return Int64(text).map(JSONValue.integer) ?? value
        default:
            return isDefault(value) ? .null : value
        }
    }

    static func count(_ value: JSONValue?) -> Int {
        switch value {
        case .array(let items)?: items.count
        case .string(let text)?: Data(base64Encoded: text)?.count ?? text.count
        default: 0
        }
    }
}
