import Foundation

/// Checks each resolved setting against its kind and turns it into a typed value, collecting
/// one sentence per mistake (named by where the value came from) instead of stopping at the
/// first.
struct SettingsChecker {
    enum Typed: Equatable {
        case text(String)
        case number(Int)
        case bytes(Int64)
        case milliseconds(UInt64)
        case flag(Bool)
        case words([String])
        case unset
    }

    private(set) var problems: [String] = []
    private var typed: [String: Typed] = [:]
    /// Keys something set (a flag, the environment or the file), valid or not.
    private var given: Set<String> = []

    init(_ settings: [Setting], _ resolved: ResolvedSettings) {
        for setting in settings {
            guard let value = resolved.values[setting.key] else {
                typed[setting.key] = .unset
                continue
            }
            if value.source != "the default" { given.insert(setting.key) }
            typed[setting.key] = check(setting, value)
        }
        for (key, value) in resolved.shadowed {
            if let setting = settings.first(where: { $0.key == key }) { _ = check(setting, value) }
        }
    }

    private mutating func check(_ setting: Setting, _ value: ResolvedSettings.Value) -> Typed {
        let text = value.text.trimmingCharacters(in: .whitespaces)
        func problem(_ expectation: String) -> Typed {
            problems.append("\(value.source) must be \(expectation), not \"\(value.text)\".")
            return .unset
        }
        switch setting.kind {
        case .text:
            return text.isEmpty ? problem("some text") : .text(text)
        case .port:
            guard let port = Int(text), (0...65_535).contains(port) else {
                return problem("a port number from 1 to 65535 (or 0 for any free port)")
            }
            return .number(port)
        case .count:
            guard let count = Int(text), count >= 1 else { return problem("a whole number of at least 1") }
            return .number(count)
        case .size:
            guard let size = ByteCount(parsing: text), size.bytes > 0 else {
                return problem("a size such as 4 MiB, 512 KiB or 65536 (bytes)")
            }
            return .bytes(size.bytes)
        case .sizeOrUnlimited:
            if text.lowercased() == "unlimited" { return .unset }
            guard let size = ByteCount(parsing: text), size.bytes > 0 else {
                return problem("a size such as 500 GiB, or unlimited")
            }
            return .bytes(size.bytes)
        case .duration:
            guard let ms = DurationText.milliseconds(parsing: text), ms > 0 else {
                return problem("a duration such as 30s, 2m or 1h")
            }
            return .milliseconds(ms)
        case .durationOrNever:
            if text.lowercased() == "never" { return .unset }
            guard let ms = DurationText.milliseconds(parsing: text), ms > 0 else {
                return problem("a duration such as 30m or 1h, or never")
            }
            return .milliseconds(ms)
        case .bool:
            switch text.lowercased() {
            case "true": return .flag(true)
            case "false": return .flag(false)
            default: return problem("true or false")
            }
        case .existingFile:
            guard FileManager.default.isReadableFile(atPath: text) else {
                problems.append(
                    "\(value.source) names \(text), which does not exist or this user may not read; check the path.")
                return .unset
            }
            return .text(text)
        case .choice(let words):
            guard words.contains(text.lowercased()) else {
                return problem(words.dropLast().joined(separator: ", ") + " or " + (words.last ?? ""))
            }
            return .text(text.lowercased())
        case .addresses:
            let addresses = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !addresses.isEmpty, addresses.allSatisfy(Self.isIPAddress) else {
                return problem("IP addresses separated by commas, such as 10.0.0.2,10.0.0.3")
            }
            return .words(addresses)
        }
    }

    mutating func require(_ condition: Bool, _ sentence: @autoclosure () -> String) {
        if !condition { problems.append(sentence()) }
    }

    /// Whether anything set `key` (valid or not).
    func isGiven(_ key: String) -> Bool { given.contains(key) }

    func text(_ key: String) -> String? {
        if case .text(let value) = typed[key] { return value }
        return nil
    }

    func number(_ key: String, _ fallback: Int) -> Int {
        if case .number(let value) = typed[key] { return value }
        return fallback
    }

    func bytes(_ key: String, _ fallback: Int64) -> Int64 {
        if case .bytes(let value) = typed[key] { return value }
        return fallback
    }

    func milliseconds(_ key: String) -> UInt64? {
        if case .milliseconds(let value) = typed[key] { return value }
        return nil
    }

    func flag(_ key: String) -> Bool {
        if case .flag(let value) = typed[key] { return value }
        return false
    }

    func words(_ key: String) -> [String] {
        if case .words(let value) = typed[key] { return value }
        return []
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
