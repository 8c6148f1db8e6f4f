import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

/// Sentences for the security events every command prints once, as they fire: the new-device
/// alert (with how to remove it), recovery alerts, and every detection in its own words.
enum EventLines {
    /// One security event as a sentence; a new device comes with how to remove it.
    static func sentence(_ event: SecurityEvent) -> String {
        switch event.kind {
        case .deviceAdded:
            let id = event.device?.hex ?? "?"
            let how = event.joinedByRecovery ? "joined with the recovery secret" : "was linked"
            return "new device \(id) \(how). If nobody here added it, remove it now: cloak remove \(id)"
        case .recoveryAttempt, .recoveryLocked:
            let what = event.detail.isEmpty ? event.kind.summary : event.detail
            return "recovery alert: \(what). If that was not you, keep the secret; `cloak devices` lists the devices"
        default:
            return "security: \(event)"
        }
    }
}
