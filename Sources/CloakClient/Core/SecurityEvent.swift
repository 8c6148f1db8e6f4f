public import CloakProtocol

/// Something the client refused or detected because the server (or a member device) did not
/// behave: surfaced to the app through ``CloakClient/securityEvents`` and kept in the local
/// store for diagnosis. Never contains plaintext or key material.
///
/// ```swift
/// for await event in client.securityEvents { showBanner(event.kind, event.detail) }
/// ```
public struct SecurityEvent: Sendable, Hashable {
    /// What was detected.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A change set or record that does not parse or has impossible fields.
        case malformedRecord
        /// A change set for another account.
        case wrongAccount
        /// A signature that does not verify (tampering, forgery; ADV-02, ADV-03, ADV-06).
        case badSignature
        /// A change set by a device that was never a member of the account (ADV-06).
        case unknownAuthor
        /// A change set by a device not active at the head it names (ADV-09).
        case authorNotActive
        /// A change set from a removed device beyond its removal cut-off (ADV-09, ADV-31).
        case beyondRemovalCutoff
        /// A change set naming a device-log head that differs from ours at that index.
        case deviceLogHeadMismatch
        /// A change set whose epoch is not the one in effect at its head.
        case wrongEpoch
        /// Commitment or AEAD check failed (ADV-02, ADV-20).
        case decryptionFailed
        /// Two different change sets for one (author, conversation, seq): equivocation (ADV-13).
        case fork
        /// Another device saw a different history than we did (signed heads disagree; ADV-13).
        case forkedView
        /// Change sets known to exist stay missing after catch-up and explicit requests: the
        /// server withholds them, or lost them (ADV-45). Resolved when they arrive.
        case withheld
        /// A device-log entry a signed record names is not served; this device stops sealing new
        /// change sets until it has it (ADV-45).
        case deviceLogWithheld
        /// The server forgot what it had acknowledged or delivered (a restored backup or a
        /// rollback); this device re-uploads what it holds (ADV-44).
        case serverRollback
        /// An incident (withheld data, a rolled-back server) was put right.
        case incidentResolved
        /// A member's operation reuses operation ids it already used with other content: it is
        /// refused on every device (ADV-47).
        case reusedOperationID
        /// A member's operation is stamped too far ahead of local time: it waits until it is
        /// within the window (ADV-28, ADV-47).
        case clockSkew
        /// The operations inside a verified change set do not decode.
        case undecodableOperations
        /// The server served a device log shorter than the one we pinned (ADV-12).
        case deviceLogRollback
        /// The server served a device log that differs from the pinned one (ADV-13).
        case deviceLogFork
        /// A new device-log entry does not verify: e.g. a server-made "add device" (ADV-10).
        case deviceLogForgery
        /// A key envelope that does not verify or is bound to something else (ADV-40).
        case keyEnvelopeRejected
        /// A snapshot that does not verify, or rolls back its lineage (ADV-12).
        case snapshotRejected
        /// A server reply that contradicts the protocol (e.g. a downgrade; ADV-25).
        case protocolViolation
        /// A new device joined the account: linked by a member device, or with the recovery
        /// secret (``SecurityEvent/joinedByRecovery``). Remove it if nobody here added it.
        case deviceAdded
        /// Someone asked the server to check recovery-passphrase guesses for this account
        /// (ADV-46); each counts until the recovery key authenticates.
        case recoveryAttempt
        /// Passphrase recovery is locked after too many guesses; any device can end the lockout.
        case recoveryLocked
        /// An assistant wrote in a conversation outside its scope (ADV-49).
        case assistantOutOfScope
        /// An assistant wrote something its grant does not allow: a message of another role,
        /// into a message it did not create, metadata, reactions… (ADV-49).
        case assistantNotPermitted
        /// An assistant wrote operations stamped at or after its grant's expiry (ADV-49).
        case assistantExpired
    }

    /// What was detected.
    public let kind: Kind
    /// The conversation concerned, if any.
    public let conversation: ConversationID?
    /// The device concerned, if any.
    public let device: DeviceID?
    /// The sequence number concerned, if any.
    public let seq: UInt64?
    /// A human-readable detail without secrets.
    public let detail: String

    /// The `detail` of a ``Kind/deviceAdded`` event for a device that joined with the
    /// recovery secret rather than through a member device.
    public static let recoveryJoinDetail = "a device joined with the account's recovery secret"

    /// For ``Kind/deviceAdded``: the device joined with the recovery secret (no member device
    /// linked it).
    public var joinedByRecovery: Bool { kind == .deviceAdded && detail == Self.recoveryJoinDetail }

    /// Creates an event.
    public init(
        _ kind: Kind, conversation: ConversationID? = nil, device: DeviceID? = nil, seq: UInt64? = nil,
        detail: String = ""
    ) {
        self.kind = kind
        self.conversation = conversation
        self.device = device
        self.seq = seq
        self.detail = detail
    }
}
