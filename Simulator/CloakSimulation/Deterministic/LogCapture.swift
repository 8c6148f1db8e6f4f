public import Logging
import Synchronization

/// Collects every log line the run's devices and server write (at debug level and above), so
/// the confidentiality check can scan them for canaries, and so a failure can show the tail.
public final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])
    /// Lines kept at most (oldest dropped): a long run must not grow without bound.
    let keep: Int

    /// Creates an empty capture.
    public init(keep: Int = 20_000) { self.keep = keep }

    /// A logger whose lines land here.
    public func logger(label: String) -> Logger {
        var logger = Logger(label: label) { label in CapturingHandler(label: label, capture: self) }
        logger.logLevel = .debug
        return logger
    }

    /// Every captured line, oldest first.
    public var all: [String] { lines.withLock { $0 } }

    func append(_ line: String) {
        lines.withLock { lines in
            lines.append(line)
            if lines.count > keep { lines.removeFirst(lines.count - keep) }
        }
    }
}

struct CapturingHandler: LogHandler {
    let label: String
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        capture.append("\(event.level) \(label): \(event.message) \(fields)")
    }
}
