import CloakCrypto
import CloakProtocol

/// A minimal JSON value with a fixed rendering, so the committed test vectors regenerate byte
/// for byte on every platform (Foundation's encoders do not promise a stable key order or
/// number format across versions).
///
/// ```swift
/// let json: VectorJSON = .object([("seq", .int(1)), ("hash_hex", .hex(hash.bytes))])
/// let text = json.rendered()      // 2-space indented, keys in the given order, trailing newline
/// ```
public indirect enum VectorJSON: Sendable {
    /// A string (written as UTF-8; only quotes, backslashes and control characters are escaped).
    case string(String)
    /// A non-negative integer.
    case int(UInt64)
    /// `true` or `false`.
    case bool(Bool)
    /// `null` (an absent reference).
    case null
    /// An array.
    case array([VectorJSON])
    /// An object whose keys keep the given order.
    case object([(String, VectorJSON)])

    /// Lowercase hex of `bytes`.
    public static func hex(_ bytes: [UInt8]) -> VectorJSON { .string(Hex.encode(bytes)) }

    /// The document text: two-space indentation, one member per line, a final newline.
    public func rendered() -> String {
        var out = ""
        render(into: &out, indent: 0)
        out += "\n"
        return out
    }

    private func render(into out: inout String, indent: Int) {
        let pad = String(repeating: " ", count: indent + 2)
        switch self {
        case .string(let text):
            out += Self.quoted(text)
        case .int(let value):
            out += String(value)
        case .bool(let value):
            out += value ? "true" : "false"
        case .null:
            out += "null"
        case .array(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "[\n"
            for (i, item) in items.enumerated() {
                out += pad
                item.render(into: &out, indent: indent + 2)
                out += i == items.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .object(let members):
            guard !members.isEmpty else { out += "{}"; return }
            out += "{\n"
            for (i, (key, value)) in members.enumerated() {
                out += pad + Self.quoted(key) + ": "
                value.render(into: &out, indent: indent + 2)
                out += i == members.count - 1 ? "\n" : ",\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
