// Sentences for the errors a person can meet through an app or the `cloak` CLI: `"\(error)"`
// reads as English, never as a Swift value like `wrongWordCount(11)`.

extension ProtocolError: CustomStringConvertible {
    /// The same sentence the wire carries (``message``).
    public var description: String { message }
}

extension RecoveryError: CustomStringConvertible {
    /// What is wrong with the words, without echoing any of them.
    public var description: String {
        switch self {
        case .wrongWordCount(let count):
            "recovery words are 12 words separated by spaces; \(count == 1 ? "1 was" : "\(count) were") given"
        case .unknownWord(let position):
            "word \(position) of the recovery words is not in the word list: check its spelling"
        case .badChecksum:
            "the recovery words do not fit together (their checksum fails): one is mistyped or out of order"
        }
    }
}

extension PairingError: CustomStringConvertible {
    /// What is wrong with the invitation.
    public var description: String {
        switch self {
        case .malformedPayload: "that is not a Cloak invitation: it starts with cloak1: and is copied whole"
        case .typo: "that invitation has a typo (its checksum does not match): copy it again, character by character"
        case .expired: "that invitation has expired (they last 10 minutes): start linking again on the new device"
        case .bundleRejected: "what the other device left for this one does not open with this invitation's secret"
        }
    }
}

extension DeviceLogConsistencyError: CustomStringConvertible {
    /// What the served log got wrong.
    public var description: String {
        switch self {
        case .rollback(let pinned, let served):
            "the server served \(served) device-log entries where this device already verified \(pinned) (a rollback)"
        case .fork(let index): "the server's device log differs from the one this device verified at entry \(index) (a fork)"
        case .invalid(let error): "a device-log entry does not verify: \(error.message)"
        }
    }
}

extension AssistantInvitationError: CustomStringConvertible {
    /// What is wrong with the assistant invitation.
    public var description: String {
        switch self {
        case .malformed: "that is not an assistant invitation: it starts with cloak-assistant1: and is copied whole"
        case .checksumMismatch: "that assistant invitation has a typo (its checksum does not match): copy it again from `cloak-agent init`"
        }
    }
}
