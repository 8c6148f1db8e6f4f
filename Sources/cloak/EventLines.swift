import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

/// Sentences for the recovery and linking events and errors (`cloak recover`,
/// `recovery-setup`, `link`, `accept`, and the new-device alert every command prints).
enum EventLines {
    /// One security event as a sentence; a new device comes with how to remove it.
    static func sentence(_ event: SecurityEvent) -> String {
        switch event.kind {
        case .deviceAdded:
            let id = event.device?.hex ?? "?"
            let how = event.joinedByRecovery ? "joined with the recovery secret" : "was linked"
            return "new device \(id) \(how). If nobody here added it, remove it now: cloak remove \(id)"
        case .recoveryAttempt, .recoveryLocked:
            return "recovery alert: \(event.detail). If that was not you, keep the secret; `cloak devices` lists the devices"
        default:
            return "security event: \(event.kind.rawValue) \(event.detail)"
        }
    }

    /// A recovery failure as a sentence and an exit code.
    static func describeRecovery(_ error: ClientError) -> (String, Int32) {
        switch error {
        case .weakPassphrase(let strength):
            let why: String =
                switch strength.reason {
                case .empty: "it is empty"
                case .commonPassword: "it is a well-known password"
                case .tooFewWords: "it has too few (or too common) words"
                case .predictablePattern: "it is mostly a keyboard run, sequence, repeat or date"
                case .tooShort, .acceptable: "it is too short"
                }
            return (
                "that passphrase is too easy to guess (\(why); about \(Int(strength.bits)) bits, at least "
                    + "\(Int(PassphraseStrength.minimumBits)) needed): use five or more random words", 1
            )
        case .recoveryAlreadySet:
            return ("this account already has a recovery secret; confirm to replace it (recovery-setup asks)", 1)
        case .recoveryLocked(let after):
            return ("recovery is locked after too many attempts; try again in \(max(1, (after + 59_999) / 60_000)) minutes", 2)
        case .recoveryUnavailable:
            return ("this server does not offer passphrase recovery; use recovery words", 2)
        case .recoveryInterrupted:
            return ("the recovery stopped before this device was added: run `cloak recover` again", 2)
        case .noRecoveryKey:
            return ("this account has no recovery passphrase set", 3)
        default:
            return ("\(error)", 1)
        }
    }
}
