import CloakCrypto
public import CloakServer
import Foundation

/// Where `cloak-server` finds its recovery (OPRF) keys: `--recovery-key-file FILE`
/// (`CLOAK_RECOVERY_KEY_FILE`), or the key text itself in the environment variable
/// `CLOAK_RECOVERY_KEYS` (for secret stores that inject the environment; never a flag, so the
/// key never shows in a process list). Never in the database or its backups: a copy of the
/// database alone then allows no passphrase guessing (PROTOCOL.md §25; docs/operations.md).
enum RecoveryKeyLoading {
    /// The environment variable holding the key text.
    static let variable = "CLOAK_RECOVERY_KEYS"

    /// The keys, or nil when neither source is given; mistakes become the checker's problems.
    static func load(_ c: inout SettingsChecker, environment: [String: String]) -> RecoveryKeySet? {
        let path = c.text("recoveryKeyFile")
        let inline = environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        if path != nil, inline != nil {
            c.require(false, "Give the recovery keys once: --recovery-key-file or \(variable), not both.")
            return nil
        }
        let text: String
        if let path {
            guard let read = readPrivateFile(path, &c) else { return nil }
            text = read
        } else if let inline {
            text = inline
        } else {
            return nil
        }
        do { return try RecoveryKeySet(parsing: text) } catch {
            c.require(false, "\(error) Fix it, or create one with `cloak-server recovery-keys generate`.")
            return nil
        }
    }

    /// A file only its owner may read: a key file others can read is refused, not used.
    private static func readPrivateFile(_ path: String, _ c: inout SettingsChecker) -> String? {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let mode = (attributes?[.posixPermissions] as? NSNumber)?.intValue ?? 0
        guard mode & 0o077 == 0 else {
            c.require(false, "The recovery key file \(path) may be read by others; make it private: chmod 600 \(path).")
            return nil
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            c.require(false, "The recovery key file \(path) cannot be read as text; check the path and its owner.")
            return nil
        }
        return text
    }

    /// A new key file's text with one fresh seed as version 1, and a comment saying where it
    /// must (not) live.
    static func generatedText() -> String {
        var seed = SecretBytes.random(count: OPRF.seedByteCount).copyBytes()
        defer { SecretBytes.wipe(&seed) }
        return """
            \(RecoveryKeySet.header)
            # Cloak recovery (OPRF) keys. Keep this file private (chmod 600) and apart from the database
            # and its backups; keep an offline copy: losing it makes passphrase recovery impossible.
            key 1 \(Hex.encode(seed))
            current 1

            """
    }
}

/// What `cloak-server recovery-keys` does.
public enum RecoveryKeysCommand {
    /// The text of a new key file (printed by `cloak-server recovery-keys generate`).
    public static func generate() -> String { RecoveryKeyLoading.generatedText() }

    /// A key file's text with one more version, made current: a fresh seed as the highest
    /// version plus one. Every older version stays, since passphrase enrollments made under it
    /// can only be evaluated with its seed (the server cannot re-key them without their users);
    /// new enrollments use the new one (PROTOCOL.md §22, docs/operations.md "Recovery keys").
    /// Comments and the other lines are kept; only the `current` line changes.
    public static func rotate(_ text: String) throws(RecoveryKeyError) -> (text: String, version: UInt32) {
        let keys = try RecoveryKeySet(parsing: text)
        guard let highest = keys.versions.last, highest < UInt32.max else { throw .problem("no version is left to rotate to") }
        let next = highest + 1
        var seed = SecretBytes.random(count: OPRF.seedByteCount).copyBytes()
        defer { SecretBytes.wipe(&seed) }
        var lines: [String] = []
        var replaced = false
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let words = (raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.first == "current" {
                // The last `current` line is the one that counts; one line replaces them all.
                guard !replaced else { continue }
                replaced = true
                lines.append("key \(next) \(Hex.encode(seed))")
                lines.append("current \(next)")
            } else {
                lines.append(raw)
            }
        }
        return (lines.joined(separator: "\n"), next)
    }

    /// Checks a key file and says what it holds (versions, current), never a key.
    public static func check(_ text: String) throws(RecoveryKeyError) -> String {
        let keys = try RecoveryKeySet(parsing: text)
        return "recovery keys: versions \(keys.versions.map(String.init).joined(separator: ", ")); current \(keys.current)"
    }
}
