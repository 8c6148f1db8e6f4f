public import CloakProtocol
import Foundation

/// Something known to be wrong that has not been put right yet: data the server withholds, a
/// device log it does not serve, a server that forgot what it had acknowledged. An incident
/// opens once (with a security event), stays in ``SyncStatus/incidents`` while it lasts, and
/// closes when the data arrives (with an ``SecurityEvent/Kind/incidentResolved`` event).
public struct Incident: Sendable, Hashable, Identifiable {
    /// What is wrong.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Change sets known to exist (a later one of the chain, a member's signed head, the
        /// server's own heads) stay missing after catch-up and explicit requests (ADV-45).
        case withheld
        /// A device-log entry a signed record names is not served; this device does not seal
        /// new change sets until it has it.
        case deviceLogWithheld
        /// The server lost what it had acknowledged or delivered (a restored backup, or a
        /// rollback): this device re-uploads what it holds (ADV-44).
        case serverRollback
        /// The server serves a shorter device log than this device verified (ADV-12): it lost
        /// entries (a restored backup) or rolls the account back; this device re-appends them.
        case deviceLogRollback
    }

    /// A stable key: one incident per kind and subject.
    public let id: String
    /// What is wrong.
    public let kind: Kind
    /// The conversation concerned, if any.
    public let conversation: ConversationID?
    /// The device concerned, if any.
    public let device: DeviceID?
    /// The first missing position, if any.
    public let fromSeq: UInt64?
    /// The last missing position, if any.
    public let toSeq: UInt64?
    /// A sentence without secrets.
    public let detail: String
    /// When it opened (ms since the Unix epoch).
    public let openedAt: UInt64

    /// Creates an incident.
    public init(
        kind: Kind, conversation: ConversationID? = nil, device: DeviceID? = nil, fromSeq: UInt64? = nil,
        toSeq: UInt64? = nil, detail: String, openedAt: UInt64
    ) {
        self.kind = kind
        self.conversation = conversation
        self.device = device
        self.fromSeq = fromSeq
        self.toSeq = toSeq
        self.detail = detail
        self.openedAt = openedAt
        id = "\(kind.rawValue):\(conversation.map { "\($0)" } ?? "-"):\(device.map { "\($0)" } ?? "-")"
    }

    /// The event that announces it.
    var event: SecurityEvent {
        let eventKind: SecurityEvent.Kind =
            switch kind {
            case .withheld: .withheld
            case .deviceLogWithheld: .deviceLogWithheld
            case .serverRollback: .serverRollback
            case .deviceLogRollback: .deviceLogRollback
            }
        return SecurityEvent(eventKind, conversation: conversation, device: device, seq: fromSeq, detail: detail)
    }

    private struct Record: Codable {
        var kind: String
        var conversation: [UInt8]?
        var device: [UInt8]?
        var fromSeq: UInt64?
        var toSeq: UInt64?
        var detail: String
        var openedAt: UInt64
    }

    /// The stored form.
    var stored: [UInt8] {
        let record = Record(
            kind: kind.rawValue, conversation: conversation?.bytes, device: device?.bytes, fromSeq: fromSeq, toSeq: toSeq,
            detail: detail, openedAt: openedAt)
        return Array((try? JSONEncoder().encode(record)) ?? Data())
    }

    /// Reads the stored form (nil when damaged: the incident is re-detected).
    init?(stored: [UInt8]) {
        guard let record = try? JSONDecoder().decode(Record.self, from: Data(stored)),
            let kind = Kind(rawValue: record.kind)
        else { return nil }
        let conversation = record.conversation.flatMap { try? ConversationID(validating: $0, field: "conversation") }
        let device = record.device.flatMap { try? DeviceID(validating: $0, field: "device") }
        self.init(
            kind: kind, conversation: conversation, device: device, fromSeq: record.fromSeq, toSeq: record.toSeq,
            detail: record.detail, openedAt: record.openedAt)
    }
}
