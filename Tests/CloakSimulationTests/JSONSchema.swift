import CloakTesting
import Foundation

/// A JSON value, decoded strictly (a boolean is never a number, an integer is a number
/// without a fraction).
indirect enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case number(Double, integral: Bool)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .number(Double(value), integral: true)
        } else if let value = try? container.decode(UInt64.self) {
            self = .number(Double(value), integral: true)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value, integral: value == value.rounded())
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    static func parse(_ data: Data) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: data) }

    subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number(_, let integral): integral ? "integer" : "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

/// The subset of JSON Schema (draft 2020-12) that `Simulator/Schemas/*.schema.json` use:
/// `type`, `const`, `enum`, `required`, `properties`, `additionalProperties`, `items`,
/// `minItems`, `minimum`, `exclusiveMinimum`, `minLength` and local `$ref`s. A keyword it does
/// not know fails validation, so the schemas cannot silently outgrow it.
struct JSONSchema {
    let root: JSONValue

    static let known: Set<String> = [
        "$schema", "$id", "$defs", "title", "description", "type", "const", "enum", "required", "properties",
        "additionalProperties", "items", "minItems", "minimum", "exclusiveMinimum", "minLength", "$ref",
    ]

    /// The schema `Simulator/Schemas/NAME`.
    static func load(_ name: String) throws -> JSONSchema {
        let url = TestData.repositoryRoot.appendingPathComponent("Simulator/Schemas").appendingPathComponent(name)
        return JSONSchema(root: try JSONValue.parse(Data(contentsOf: url)))
    }

    /// Every violation ("path: why"); empty when `value` conforms.
    func validate(_ value: JSONValue) -> [String] { validate(value, against: root, at: "$") }

    private func validate(_ value: JSONValue, against schema: JSONValue, at path: String) -> [String] {
        guard case .object(let keywords) = schema else { return ["\(path): the schema is not an object"] }
        var errors = keywords.keys.filter { !Self.known.contains($0) }.map { "\(path): unsupported keyword \($0)" }
        if case .string(let reference)? = keywords["$ref"] {
            let names = reference.hasPrefix("#/") ? reference.dropFirst(2).split(separator: "/").map(String.init) : []
            guard let target = names.reduce(Optional(root), { $0?[$1] }) else { return errors + ["\(path): bad $ref \(reference)"] }
            errors += validate(value, against: target, at: path)
        }
        if let type = keywords["type"] {
            let allowed: [String] =
                switch type {
                case .string(let name): [name]
                case .array(let names): names.compactMap { if case .string(let name) = $0 { name } else { nil } }
                default: []
                }
            let actual = value.typeName
            if !allowed.contains(actual), !(actual == "integer" && allowed.contains("number")) {
                errors.append("\(path): is \(actual), expected \(allowed.joined(separator: " or "))")
            }
        }
        if let constant = keywords["const"], constant != value { errors.append("\(path): is not the constant") }
        if case .array(let options)? = keywords["enum"], !options.contains(value) { errors.append("\(path): not in the enum") }
        if case .number(let number, _) = value {
            if case .number(let minimum, _)? = keywords["minimum"], number < minimum { errors.append("\(path): below \(minimum)") }
            if case .number(let bound, _)? = keywords["exclusiveMinimum"], number <= bound { errors.append("\(path): not above \(bound)") }
        }
        if case .string(let text) = value, case .number(let length, _)? = keywords["minLength"], Double(text.count) < length {
            errors.append("\(path): shorter than \(Int(length))")
        }
        if case .array(let elements) = value {
            if case .number(let count, _)? = keywords["minItems"], Double(elements.count) < count {
                errors.append("\(path): fewer than \(Int(count)) items")
            }
            if let items = keywords["items"] {
                for (index, element) in elements.enumerated() { errors += validate(element, against: items, at: "\(path)[\(index)]") }
            }
        }
        if case .object(let members) = value {
            if case .array(let required)? = keywords["required"] {
                for case .string(let name) in required where members[name] == nil { errors.append("\(path): lacks \(name)") }
            }
            let properties: [String: JSONValue] = if case .object(let p)? = keywords["properties"] { p } else { [:] }
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                if let property = properties[name] {
                    errors += validate(member, against: property, at: "\(path).\(name)")
                } else if let additional = keywords["additionalProperties"] {
                    if additional == .bool(false) {
                        errors.append("\(path): unexpected member \(name)")
                    } else if case .object = additional {
                        errors += validate(member, against: additional, at: "\(path).\(name)")
                    }
                }
            }
        }
        return errors
    }
}
