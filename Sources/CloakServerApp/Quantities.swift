import Foundation

/// A number of bytes as people write it: `4 MiB`, `8 GiB`, `512KiB`, `10 MB` or plain `65536`.
/// Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (kB, MB, GB, TB) powers of
/// 1000; units are case-insensitive. Printed in the largest binary unit that keeps it exact
/// (`4 MiB`), else with two decimals (`1.46 MiB`), else in bytes.
///
/// ```swift
/// ByteCount(parsing: "4 MiB")?.bytes   // 4194304
/// ByteCount(8 << 30).description        // "8 GiB"
/// ```
public struct ByteCount: Sendable, Hashable, CustomStringConvertible {
    /// The number of bytes.
    public var bytes: Int64

    /// Wraps a byte count.
    public init(_ bytes: Int64) {
        self.bytes = bytes
    }

    static let units: [(name: String, factor: Int64)] = [
        ("b", 1), ("byte", 1), ("bytes", 1),
        ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("tib", 1 << 40),
        ("kb", 1_000), ("mb", 1_000_000), ("gb", 1_000_000_000), ("tb", 1_000_000_000_000),
    ]

    /// Parses `<whole number> [unit]`; nil for anything else (a fraction, a negative number, an
    /// unknown unit, or more than 2^63 bytes).
    public init?(parsing text: String) {
        let (number, unit) = splitNumber(text)
        guard let value = Int64(number), value >= 0 else { return nil }
        let factor: Int64
        if unit.isEmpty {
            factor = 1
        } else if let known = Self.units.first(where: { $0.name == unit.lowercased() }) {
            factor = known.factor
        } else {
            return nil
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: factor)
        guard !overflow else { return nil }
        bytes = product
    }

    /// `4 MiB`, `1.46 MiB`, `512 bytes`.
    public var description: String {
        let binary: [(String, Int64)] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        for (name, factor) in binary where bytes >= factor {
            if bytes % factor == 0 { return "\(bytes / factor) \(name)" }
            let hundredths = (bytes * 100 + factor / 2) / factor
            return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100) \(name)"
        }
        return bytes == 1 ? "1 byte" : "\(bytes) bytes"
    }
}

/// A span of time as people write it: `500ms`, `30s`, `2m`, `1h`, `1d`, or several together
/// (`1h30m`). Printed the same way (`30s`, `1h30m`).
public enum DurationText {
    static let units: [(name: String, milliseconds: UInt64)] = [
        ("ms", 1), ("s", 1_000), ("sec", 1_000), ("m", 60_000), ("min", 60_000), ("h", 3_600_000), ("d", 86_400_000),
    ]

    /// Milliseconds in `text`; nil unless it is one or more `<whole number><unit>` parts.
    public static func milliseconds(parsing text: String) -> UInt64? {
        var rest = Substring(text.filter { !$0.isWhitespace })
        guard !rest.isEmpty else { return nil }
        var total: UInt64 = 0
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            guard let value = UInt64(digits), let known = units.first(where: { $0.name == unit.lowercased() }) else {
                return nil
            }
            let (part, overflow) = value.multipliedReportingOverflow(by: known.milliseconds)
            guard !overflow, total <= UInt64.max - part else { return nil }
            total += part
        }
        return total
    }

    /// `1h30m`, `30s`, `250ms`, `0s`.
    public static func format(milliseconds: UInt64) -> String {
        guard milliseconds > 0 else { return "0s" }
        var rest = milliseconds
        var out = ""
        for (name, size) in [("d", UInt64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)]
        where rest >= size {
            out += "\(rest / size)\(name)"
            rest %= size
        }
        return out
    }
}

/// The number at the start of `text` and the rest (the unit), both trimmed.
private func splitNumber(_ text: String) -> (String, String) {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
    let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
    return (String(digits), unit)
}
