public import CloakCrypto
public import CloakProtocol

/// Every way a client API call can fail, each naming what went wrong. Messages never contain
/// message text, titles, reactions or key material.
///
/// ```swift
/// do { try await client.appendMessage(to: id, role: .user, text: "hi") }
/// catch .unknownConversation { … }
/// ```
public enum ClientError: Error, Equatable, Sendable {
    /// The local store or secret store failed (disk full, permissions, corruption).
    case storage(String)
    /// The client has no account yet: create one, link this device, or recover.
    case noAccount
    /// The client already belongs to an account.
    case alreadyInitialized
    /// The server refused a request with this code.
    case server(ProtocolError)
    /// The server could not be reached, or the connection dropped before an answer.
    case notConnected
    /// The server did not answer in time.
    case timeout
    /// No conversation with this id exists locally.
    case unknownConversation(ConversationID)
    /// An edit referred to something that does not exist, or was invalid.
    case invalidEdit(String)
    /// The device log the server served is not acceptable (rollback, fork, forged entry).
    case deviceLog(DeviceLogConsistencyError)
    /// A pairing payload or bundle was refused.
    case pairing(PairingError)
    /// This pairing payload was used already (its device is already in the account).
    case pairingReused
    /// The pairing was not confirmed, or its mailbox expired before the accepting device answered.
    case pairingNotCompleted
    /// Recovery words were malformed.
    case recoveryWords(RecoveryError)
    /// No account uses this recovery secret, or the passphrase is wrong.
    case wrongRecoverySecret
    /// The account has no recovery key set.
    case noRecoveryKey
    /// A cryptographic check failed.
    case crypto(CryptoError)
    /// The device is not a member of the account (unknown id, or removed).
    case unknownDevice(DeviceID)
    /// This device was removed from the account; it can no longer sync.
    case removedFromAccount
    /// A key this operation needs is not available yet (its envelope has not arrived).
    case missingEpochKey(UInt64)
    /// The other device's user said the two codes do not match (or declined): nothing was
    /// added; start again with a new invitation.
    case linkDeclined
    /// A recovery passphrase is refused: too easy to guess (the estimate and its main weakness).
    case weakPassphrase(PassphraseStrength)
    /// The account already has a recovery secret: replacing it must be asked for explicitly
    /// (it starts a new key epoch and the old secret stops working).
    case recoveryAlreadySet
    /// Passphrase recovery is locked after too many attempts, for this many more milliseconds.
    case recoveryLocked(retryAfterMs: UInt64)
    /// The server offers no passphrase recovery (its operator configured no recovery key).
    case recoveryUnavailable
    /// A recovery stopped before this device was added (a crash or a lost connection): run it
    /// again with the recovery secret.
    case recoveryInterrupted
    /// An assistant invitation's text was refused.
    case assistantInvitation(AssistantInvitationError)
    /// No active assistant with this id in the account.
    case unknownAssistant(DeviceID)
    /// The account's device log grants this assistant nothing (not yet, or no longer).
    case assistantNotGranted
    /// An assistant may not do this (PROTOCOL.md §29): it only writes its own assistant and
    /// tool messages in the conversations of its scope, before its expiry.
    case notPermitted(String)
}
