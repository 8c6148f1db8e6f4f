import Foundation
public import Logging
import Synchronization

/// A swift-log handler that writes one JSON object per line (`--log-format json`), for log
/// collectors: `{"time":"…","level":"info","label":"cloak-server","message":"…", …metadata}`.
/// It writes what the server logs, which never holds keys, ciphertext or passwords (the server
/// logs ids, codes and counts; tests scan the output for canaries).
///
/// ```swift
/// LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: .info) }
/// ```
public struct JSONLogHandler: LogHandler {
    /// Where lines go: standard error, or a test's buffer.
    public typealias Sink = @Sendable (String) -> Void

    /// The logger's label.
    public let label: String
    /// The handler's level.
    public var logLevel: Logger.Level
    /// Metadata added to every line.
    public var metadata: Logger.Metadata = [:]
    private let sink: Sink

    /// Writes to standard error (one `write` per line, so lines from threads never interleave).
    public init(label: String, level: Logger.Level, sink: Sink? = nil) {
        self.label = label
        logLevel = level
        self.sink = sink ?? { line in FileHandle.standardError.write(Data(line.utf8)) }
    }

    /// Metadata of this handler by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line.
    public func log(event: LogEvent) {
        var object: [String: Any] = [
            "time": Self.timestamp(), "level": event.level.rawValue, "label": label, "message": "\(event.message)",
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            // Fixed keys win: metadata cannot pass itself off as the message or the level.
            if object[key] == nil { object[key] = Self.plain(value) }
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        sink(String(decoding: data, as: UTF8.self) + "\n")
    }

    private static func plain(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let value): value.description
        case .array(let values): values.map(plain)
        case .dictionary(let values): values.mapValues(plain)
        }
    }

    private static func timestamp() -> String {
        Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}
