import Configuration
import Foundation

/// A mistake in the configuration, as sentences a person reads: one per mistake, each naming
/// where the value came from and what to do.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The mistakes, one sentence each.
    public var problems: [String]

    /// Wraps the problems found.
    public init(_ problems: [String]) {
        self.problems = problems
    }

    /// The problems, one per line.
    public var description: String { problems.joined(separator: "\n") }
}

/// Each setting's text and where it came from, by precedence: a flag, the environment, the
/// config file, the default. The environment and the file are read through swift-configuration
/// (`EnvironmentVariablesProvider` under the `cloak` prefix, so `maxFrameBytes` is
/// `CLOAK_MAX_FRAME_BYTES`; `FileProvider<JSONSnapshot>`); flags are parsed here so an unknown one
/// gets a clear answer.
///
/// ```swift
/// let flags = try SettingsLoader.flags(["--port", "9000"], allowed: Setting.all)
/// let resolved = try await SettingsLoader.resolve(Setting.all, flags: flags,
///                                                 environment: ProcessInfo.processInfo.environment, configFile: nil)
/// ```
public struct ResolvedSettings: Sendable {
    /// One setting's text and origin.
    public struct Value: Sendable, Equatable {
        /// As written.
        public var text: String
        /// Where: `--port`, `CLOAK_PORT`, `port in /etc/cloak/server.json`, or `the default`.
        public var source: String
    }

    /// By setting key; absent when nothing sets it and it has no default.
    public var values: [String: Value]
    /// Values a higher-precedence source overrides (a variable under a flag, a file key under
    /// either): not used, but still checked, so a malformed one is reported rather than left
    /// to surprise whoever removes the override.
    public var shadowed: [(key: String, value: Value)] = []
}

/// Reads flags, the environment and a config file into ``ResolvedSettings``.
public enum SettingsLoader {
    /// `--name value` and `--name=value` pairs of the allowed settings (a `bool` setting given
    /// alone means true), keyed by setting key.
    public static func flags(_ arguments: [String], allowed: [Setting]) throws(ConfigurationError) -> [String: String] {
        var out: [String: String] = [:]
        var problems: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            let (name, inline) = split(argument)
            guard let setting = allowed.first(where: { $0.flag == name }) else {
                problems.append(unknownFlag(argument, allowed: allowed))
                // Its value, if it has one, is not a second mistake.
                if inline == nil, name.hasPrefix("--"), index < arguments.count, !arguments[index].hasPrefix("--") {
                    index += 1
                }
                continue
            }
            if let inline {
                out[setting.key] = inline
            } else if setting.kind == .bool, index >= arguments.count || arguments[index].hasPrefix("--") {
                out[setting.key] = "true"
            } else if index < arguments.count {
                out[setting.key] = arguments[index]
                index += 1
            } else {
                problems.append("\(setting.flag) needs a value (\(setting.kind.placeholder)).")
            }
        }
        guard problems.isEmpty else { throw ConfigurationError(problems) }
        return out
    }

    /// Each setting's text by precedence (flag, environment, config file, default).
    public static func resolve(
        _ settings: [Setting], flags: [String: String], environment: [String: String], configFile: String?
    ) async throws(ConfigurationError) -> ResolvedSettings {
        let flagReader = ConfigReader(
            provider: InMemoryProvider(
                name: "flags",
                values: Dictionary(uniqueKeysWithValues: flags.map { (AbsoluteConfigKey(ConfigKey($0.key)), ConfigValue(.string($0.value), isSecret: false)) })))
        let environmentReader = ConfigReader(
            provider: EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "cloak"))
        var file: ConfigFile?
        if let configFile { file = try await ConfigFile.open(configFile) }
        var resolved = ResolvedSettings(values: [:])
        for setting in settings {
            let key = ConfigKey(setting.key)
            let found: [ResolvedSettings.Value] = [
                flagReader.string(forKey: key).map { .init(text: $0, source: setting.flag) },
                environmentReader.string(forKey: key).map { .init(text: $0, source: setting.variable) },
                file.flatMap { file in file.text(for: key).map { .init(text: $0, source: "\(setting.key) in \(file.path)") } },
                setting.defaultValue.map { .init(text: $0, source: "the default") },
            ].compactMap { $0 }
            resolved.values[setting.key] = found.first
            resolved.shadowed += found.dropFirst().filter { $0.source != "the default" }.map { (setting.key, $0) }
        }
        return resolved
    }

    private static func split(_ argument: String) -> (String, String?) {
        guard let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    private static func unknownFlag(_ argument: String, allowed: [Setting]) -> String {
        let (name, _) = split(argument)
        guard name.hasPrefix("--") else {
            return "\"\(argument)\" is not an option; options look like --port 8080 (see --help)."
        }
        let close = allowed.map(\.flag).min { distance($0, name) < distance($1, name) }
        if let close, distance(close, name) <= 3 {
            return "\(name) is not an option of this command; did you mean \(close)? (see --help)"
        }
        return "\(name) is not an option of this command (see --help for the options)."
    }

    /// Edit distance, for "did you mean".
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}

/// A JSON config file: one object whose keys are setting keys and whose values are text,
/// numbers or true/false.
struct ConfigFile {
    let path: String
    let reader: ConfigReader

    static func open(_ path: String) async throws(ConfigurationError) -> ConfigFile {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigurationError(["The config file \(path) does not exist; check the --config path."])
        }
        // Unknown keys are typos until proven otherwise: refuse them rather than ignore them.
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw ConfigurationError([
                "The config file \(path) is not a JSON object; write it as {\"port\": 8080, \"maxFrameBytes\": \"4 MiB\"}."
            ])
        }
        let known = Set(Setting.all.map(\.key))
        let unknown = object.keys.filter { !known.contains($0) }.sorted()
        let problems = unknown.map { key in
            let close = known.min { SettingsLoader.distance($0, key) < SettingsLoader.distance($1, key) }
            let hint = close.map { SettingsLoader.distance($0, key) <= 3 ? "; did you mean \($0)?" : "" } ?? ""
            return "The config file \(path) has an unknown key \"\(key)\"\(hint) (cloak-server serve --help lists the keys)."
        }
        // Keys another command uses (a `serve` file read by `migrate`) are simply not read.
        guard problems.isEmpty else { throw ConfigurationError(problems) }
        do {
            // The provider reads its own settings from a reader: the path goes in as text.
            let location = ConfigReader(
                provider: InMemoryProvider(values: [AbsoluteConfigKey(ConfigKey("filePath")): ConfigValue(.string(path), isSecret: false)]))
            let provider = try await FileProvider<JSONSnapshot>(config: location)
            return ConfigFile(path: path, reader: ConfigReader(provider: provider))
        } catch {
            throw ConfigurationError([
                "The config file \(path) could not be read; check that this user may read it and that it is valid JSON."
            ])
        }
    }

    /// The value as text, whether the file wrote it as a string, a whole number or a boolean.
    func text(for key: ConfigKey) -> String? {
        reader.string(forKey: key) ?? reader.int(forKey: key).map(String.init) ?? reader.bool(forKey: key).map { "\($0)" }
    }
}
