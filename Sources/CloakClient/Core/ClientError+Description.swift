import CloakCrypto
import CloakProtocol

extension ClientError: CustomStringConvertible {
    /// A sentence for a person: what went wrong, naming the thing (a full hex id), and what to do
    /// where the library knows. Never message text, titles or key material. A caller with more
    /// context (the CLI knows the directory and the server URL) wraps it.
    public var description: String {
        switch self {
        case .storage(let reason): "the device's local storage failed: \(reason)"
        case .noAccount: "this device has no account yet: create one, link this device to an existing one, or recover one"
        case .alreadyInitialized: "this device already belongs to an account"
        case .server(let error): "the server refused the request: \(error.message)"
        case .notConnected: "the server could not be reached, or the connection dropped before it answered"
        case .timeout: "the server did not answer in time"
        case .unknownConversation(let id): "there is no conversation \(id.hex) on this device"
        case .invalidEdit(let reason): "the edit was refused: \(reason)"
        case .deviceLog(let error): "the device log the server served was refused: \(error)"
        case .pairing(let error): error.description
        case .pairingReused: "this invitation was used already: its device is in the account"
        case .pairingNotCompleted:
            "the link was not completed: no device accepted the invitation before it expired, or the codes were not confirmed"
        case .recoveryWords(let error): error.description
        case .wrongRecoverySecret: "no account uses this recovery secret, or the passphrase is wrong"
        case .noRecoveryKey: "the account has no recovery words or passphrase set up"
        case .crypto(let error): "a cryptographic check failed: \(error)"
        case .unknownDevice(let id): "\(id.hex) is not an active device of this account"
        case .removedFromAccount: "this device was removed from its account: it can no longer sync or write"
        case .missingEpochKey(let epoch): "the key of epoch \(epoch) has not reached this device yet"
        case .linkDeclined: "the other device said the codes do not match: nothing was added; start linking again"
        case .weakPassphrase(let strength):
            "that passphrase is too easy to guess (\(Self.weakness(strength.reason)); about \(Int(strength.bits)) bits, at least "
                + "\(Int(PassphraseStrength.minimumBits)) needed): use five or more random words"
        case .recoveryAlreadySet:
            "this account already has a recovery secret: replacing it must be asked for (the old one stops working)"
        case .recoveryLocked(let after):
            "passphrase recovery is locked after too many attempts; try again in \(max(1, (after + 59_999) / 60_000)) minutes"
        case .recoveryUnavailable: "this server does not offer passphrase recovery: use the recovery words"
        case .recoveryInterrupted: "the recovery stopped before this device was added: run it again with the recovery secret"
        case .assistantInvitation(let error): error.description
        case .unknownAssistant(let id): "\(id.hex) is not an active assistant of this account"
        case .assistantNotGranted: "the account's device log grants this assistant nothing (not yet, or no longer)"
        case .notPermitted(let why): "an assistant may not do this: \(why)"
        }
    }

    /// The main weakness of a refused passphrase, as a clause.
    private static func weakness(_ reason: PassphraseStrength.Reason) -> String {
        switch reason {
        case .empty: "it is empty"
        case .commonPassword: "it is a well-known password"
        case .tooFewWords: "it has too few (or too common) words"
        case .predictablePattern: "it is mostly a keyboard run, sequence, repeat or date"
        case .tooShort, .acceptable: "it is too short"
        }
    }
}
