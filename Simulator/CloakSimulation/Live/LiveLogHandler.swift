import Logging

/// The live devices' log: it counts the errors the server answered to background sync
/// requests (the client logs them as "server error" with a `code`), and checks that no line
/// carries a canary (ADV-15: logs are one of the places plaintext must never reach). Lines are
/// otherwise dropped: a load run does not print its devices' chatter.
struct LiveLogHandler: LogHandler {
    let recorder: LiveRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .notice

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        if event.message.description == "server error", let code = merged["code"] {
            recorder.serverError(code: LiveErrorCode.screamingSnakeCase(code.description))
        }
        let line = "\(event.level) \(event.message) \(merged.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
        if line.contains(RenderTokens.prefix) { recorder.logLeak(line) }
    }

    /// A logger whose lines land in `recorder`.
    static func logger(_ recorder: LiveRecorder, label: String) -> Logger {
        var logger = Logger(label: label) { _ in LiveLogHandler(recorder: recorder) }
        logger.logLevel = .notice
        return logger
    }
}
