import CloakCRDT
import CloakCrypto
import CloakProtocol
import Foundation

/// How the CLI writes times: a local date and time with its zone, never epoch milliseconds.
enum Dates {
    private static let formatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
        return formatter
    }()

    /// `millis` since the Unix epoch as `2026-05-01 14:03:05 UTC`.
    static func format(millis: UInt64) -> String {
        formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    /// A duration in whole seconds, minutes or hours, for "since …" and "… ago".
    static func span(millis: UInt64) -> String {
        let seconds = millis / 1000
        if seconds < 120 { return "\(seconds) s" }
        if seconds < 7_200 { return "\(seconds / 60) min" }
        return "\(seconds / 3_600) h"
    }
}

/// Writes a line to standard error, unbuffered (progress must show while the command waits).
func note(_ line: String) {
    FileHandle.standardError.write(Data("cloak: \(line)\n".utf8))
}

func parseConversation(_ text: String) throws(CLIError) -> ConversationID {
    guard let bytes = try? Hex.decode(text), let id = try? ConversationID(validating: bytes, field: "conversation") else {
        throw .usage("\(text.isEmpty ? "an empty text" : "'\(text)'") is not a conversation id: one is 32 hex digits, as `cloak show` prints it")
    }
    return id
}

func parseDevice(_ text: String) throws(CLIError) -> DeviceID {
    guard let bytes = try? Hex.decode(text), let id = try? DeviceID(validating: bytes, field: "device") else {
        throw .usage("\(text.isEmpty ? "an empty text" : "'\(text)'") is not a device id: one is 32 hex digits, as `cloak devices` prints it")
    }
    return id
}
