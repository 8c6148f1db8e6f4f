public import Foundation

/// Searches bytes (a database file, a log, captured frames) for canary strings in every
/// encoding a careless implementation might have written them in: UTF-8, UTF-16 (both byte
/// orders), base64 (all three alignments) and hex (both cases). A confidentiality check
/// (ADV-15): Cloak must store and send only ciphertext, so no canary may ever be found.
///
/// ```swift
/// let scanner = CanaryScanner(canaries: ["cloak-canary-42"])
/// let found = try scanner.scan(files: [databaseURL])     // [] when nothing leaked
/// ```
public struct CanaryScanner: Sendable {
    /// A canary found somewhere.
    public struct Finding: Sendable, Hashable, CustomStringConvertible {
        /// The canary.
        public let canary: String
        /// Where (a file path, or a caller-chosen label).
        public let location: String
        /// The encoding it was found in.
        public let encoding: String

        /// "canary (encoding) in location".
        public var description: String { "\(canary) (\(encoding)) in \(location)" }
    }

    /// The canaries.
    public let canaries: [String]
    private let patterns: [(canary: String, encoding: String, bytes: [UInt8])]

    /// Prepares every encoding of every canary.
    public init(canaries: [String]) {
        self.canaries = canaries
        var patterns: [(String, String, [UInt8])] = []
        for canary in canaries {
            let utf8 = Array(canary.utf8)
            patterns.append((canary, "utf-8", utf8))
            patterns.append((canary, "utf-16le", Array(canary.data(using: .utf16LittleEndian) ?? Data())))
            patterns.append((canary, "utf-16be", Array(canary.data(using: .utf16BigEndian) ?? Data())))
            patterns.append((canary, "hex", Array(utf8.map { String(format: "%02x", $0) }.joined().utf8)))
            patterns.append((canary, "HEX", Array(utf8.map { String(format: "%02X", $0) }.joined().utf8)))
            for shift in 0..<3 {
                // Base64 of the canary at each alignment inside a longer text: drop the
                // partial leading/trailing characters that depend on neighbouring bytes.
                let encoded = Array(Data([UInt8](repeating: 0, count: shift) + utf8).base64EncodedString().utf8)
                let stable = Array(encoded.dropFirst((shift * 4 + 2) / 3 + (shift > 0 ? 1 : 0)).dropLast(4))
                if stable.count >= 8 { patterns.append((canary, "base64/\(shift)", stable)) }
            }
        }
        self.patterns = patterns
    }

    /// Findings in `bytes`.
    public func scan(_ bytes: [UInt8], location: String) -> [Finding] {
        var findings: [Finding] = []
        for pattern in patterns where Self.contains(bytes, pattern.bytes) {
            findings.append(Finding(canary: pattern.canary, location: location, encoding: pattern.encoding))
        }
        return findings
    }

    /// Findings in the files that exist among `files` (missing files are skipped; a database's
    /// `-wal` and `-shm` companions should be listed too).
    public func scan(files: [URL]) throws -> (findings: [Finding], bytesScanned: Int) {
        var findings: [Finding] = []
        var total = 0
        for file in files where FileManager.default.fileExists(atPath: file.path) {
            let bytes = Array(try Data(contentsOf: file))
            total += bytes.count
            findings += scan(bytes, location: file.path)
        }
        return (findings, total)
    }

    /// Every regular file below `directory`.
    public static func files(under directory: URL) -> [URL] {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { $0 as? URL }.filter { !$0.hasDirectoryPath }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                var index = 0
                let last = h.count - n.count
                while index <= last {
                    if h[index] == first, memcmp(h.baseAddress! + index, n.baseAddress!, n.count) == 0 { return true }
                    index += 1
                }
                return false
            }
        }
    }
}
