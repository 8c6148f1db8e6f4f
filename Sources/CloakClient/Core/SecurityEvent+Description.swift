import CloakProtocol

extension SecurityEvent.Kind {
    /// What was detected, as a sentence a person can act on (no Swift names).
    public var summary: String {
        switch self {
        case .malformedRecord: "a change set or record from the server does not parse"
        case .wrongAccount: "the server delivered a change set of another account"
        case .badSignature: "a change set's signature does not verify (tampering or forgery)"
        case .unknownAuthor: "a change set is signed by a device that was never a member of the account"
        case .authorNotActive: "a change set comes from a device that was not active when it was written"
        case .beyondRemovalCutoff: "a removed device's change sets written after its removal were refused"
        case .deviceLogHeadMismatch: "a change set names a device-log head that differs from the verified log"
        case .wrongEpoch: "a change set uses a key epoch that was not in effect where it was written"
        case .decryptionFailed: "a change set does not decrypt (key commitment or authentication failed)"
        case .fork: "two different change sets hold one position of a device's chain (equivocation)"
        case .forkedView: "another device saw a different history than this one (their signed heads disagree)"
        case .withheld: "change sets known to exist are still missing after catching up: the server withholds or lost them"
        case .deviceLogWithheld:
            "the server does not serve device-log entries that signed records name; this device writes no new change sets until it has them"
        case .serverRollback:
            "the server forgot what it had acknowledged or delivered (a restored backup or a rollback); this device re-uploads what it holds"
        case .incidentResolved: "an earlier incident was put right"
        case .reusedOperationID: "a member reused operation ids with different content; refused on every device"
        case .clockSkew: "a member's operation is stamped too far in the future; it applies once it is within the window"
        case .undecodableOperations: "the operations inside a verified change set do not decode"
        case .deviceLogRollback: "the server served a shorter device log than this device verified"
        case .deviceLogFork: "the server served a device log that differs from the one this device verified"
        case .deviceLogForgery: "a device-log entry does not verify (for example a device the server added)"
        case .keyEnvelopeRejected: "a key envelope does not verify, or is bound to something else"
        case .snapshotRejected: "a snapshot does not verify, or rolls back its lineage"
        case .protocolViolation: "the server answered against the protocol"
        case .deviceAdded: "a new device joined the account; if nobody here added it, remove it"
        case .recoveryAttempt: "someone asked the server to check a recovery-passphrase guess for this account"
        case .recoveryLocked: "passphrase recovery is locked after too many guesses; any device of the account can end the lockout"
        case .assistantOutOfScope: "an assistant wrote in a conversation outside its scope; refused"
        case .assistantNotPermitted: "an assistant wrote something its grant does not allow; refused"
        case .assistantExpired: "an assistant wrote after its access expired; refused"
        }
    }
}

extension SecurityEvent: CustomStringConvertible {
    /// The summary, what it concerns (full hex ids) and the detail, in one line.
    public var description: String {
        var concerns: [String] = []
        if let conversation { concerns.append("conversation \(conversation.hex)") }
        if let device { concerns.append("device \(device.hex)") }
        if let seq { concerns.append("position \(seq)") }
        let context = concerns.isEmpty ? "" : " (\(concerns.joined(separator: ", ")))"
        return kind.summary + context + (detail.isEmpty ? "" : ": \(detail)")
    }
}
