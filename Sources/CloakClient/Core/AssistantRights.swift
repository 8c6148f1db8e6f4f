import CloakCRDT

/// What an assistant may write (PROTOCOL.md §29 "Rights"), as a pure function of the operations
/// of one of its change sets, so every device decides alike: create messages with role
/// `assistant` or `tool`, and append text to messages it created (a message is named by the
/// operation that created it, so its creator is in its id). Nothing else: no `user` or `system`
/// message, no edit of another's message, no deletion, branch choice, metadata, reaction, read
/// marker or library operation. And nothing stamped at or after its grant's expiry.
///
/// ```swift
/// if let violation = AssistantRights.violation(ops, author: replica, expiresAtMs: terms.expiresAtMs) {
///     reject(changeSet, violation.kind, violation.detail)
/// }
/// ```
enum AssistantRights {
    struct Violation: Equatable {
        let kind: SecurityEvent.Kind
        let detail: String
    }

    static func violation(_ ops: [CRDTOperation], author: ReplicaID, expiresAtMs: UInt64) -> Violation? {
        for op in ops {
            if op.timestamp.millis >= expiresAtMs {
                return Violation(kind: .assistantExpired, detail: "an assistant's operation is stamped after its grant expired")
            }
            switch op.payload {
            case .createMessage(_, let role, _):
                guard role == .assistant || role == .tool else {
                    return Violation(kind: .assistantNotPermitted, detail: "an assistant wrote a \(role) message")
                }
            case .insertText(let message, _, _, _):
                guard message.replica == author else {
                    return Violation(kind: .assistantNotPermitted, detail: "an assistant wrote into a message it did not create")
                }
            default:
                return Violation(kind: .assistantNotPermitted, detail: "an assistant may only write its own messages")
            }
        }
        return nil
    }
}
