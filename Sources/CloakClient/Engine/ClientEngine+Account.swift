import CloakCrypto
public import CloakProtocol
import Foundation
import SwiftProtobuf

// The account's lifecycle: each starts a flow whose result arrives as
// `Effect.flowFinished(id, result)`.
extension ClientEngine {
    /// Creates a new account with this device as its only member.
    public func createAccount() -> FlowID { startFlow(CreateAccountFlow()) }

    /// Starts linking this (new) device: the invitation to show on it.
    public func beginLink() throws(ClientError) -> LinkInvitation {
        guard core.account == nil else { throw .alreadyInitialized }
        return LinkInvitation(payload: PairingPayload.create(
            signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey,
            nowMs: core.now(), random: core.random))
    }

    /// Waits (polling the pairing mailbox) until an existing device accepted the invitation;
    /// finishes with ``FlowOutcome/pendingLink(_:)``.
    public func awaitLink(_ invitation: LinkInvitation, pollMillis: UInt64 = 500) -> FlowID {
        startFlow(AwaitLinkFlow(payload: invitation.payload, pollMillis: pollMillis))
    }

    /// Trusts a pending link after the user confirmed both devices show the same code.
    public func confirmLink(_ link: PendingLink) throws(ClientError) {
        try core.join(log: link.log, envelopes: link.envelopes)
    }

    /// Accepts a new device's invitation; finishes with ``FlowOutcome/linkCode(_:)``.
    public func acceptLink(_ invitationText: String) throws(ClientError) -> FlowID {
        let payload: PairingPayload
        do { payload = try PairingPayload(text: invitationText, nowMs: core.now()) } catch { throw .pairing(error) }
        return startFlow(AcceptLinkFlow(payload: payload))
    }

    /// Removes a device from the account (a new key epoch it never receives).
    public func removeDevice(_ device: DeviceID) -> FlowID { startFlow(RemoveDeviceFlow(device: device)) }

    /// Sets a random recovery secret; returns its words (to show once) and the flow storing it.
    public func setUpRecoveryWords() -> (words: String, flow: FlowID) {
        let secret = RecoverySecret.random(using: core.random)
        return (secret.words, startFlow(SetRecoveryFlow(keys: secret.keys, kdfParameters: RecoverySecret.wordsParameterMarker)))
    }

    /// Sets a recovery passphrase (Argon2id with a fresh salt and Cloak's default parameters).
    public func setUpRecoveryPassphrase(_ passphrase: String) throws(ClientError) -> FlowID {
        let parameters = PasswordKDFParameters.recommended(using: core.random)
        let keys: RecoveryKeys
        do { keys = try RecoveryKeys(passphrase: passphrase, parameters: parameters) } catch { throw .crypto(error) }
        return startFlow(SetRecoveryFlow(keys: keys, kdfParameters: parameters.encoded))
    }

    /// Restores the account on this fresh device from recovery words.
    public func recover(words: String) throws(ClientError) -> FlowID {
        let secret: RecoverySecret
        do { secret = try RecoverySecret(words: words) } catch { throw .recoveryWords(error) }
        let keys = secret.keys
        return startFlow(RecoverFlow(lookup: .with { $0.recoveryKeyID = Data(keys.id.bytes) }, derive: { _ throws(ClientError) in keys }))
    }

    /// Restores the account on this fresh device from its passphrase (the account id is needed
    /// because a passphrase alone does not identify an account).
    public func recover(account: AccountID, passphrase: String) -> FlowID {
        startFlow(RecoverFlow(lookup: .with { $0.accountID = Data(account.bytes) }, derive: { blob throws(ClientError) in
            let parameters: PasswordKDFParameters
            // Below-floor or unknown parameters are a downgrade attempt (ADV-25).
            do throws(CryptoError) { parameters = try PasswordKDFParameters(decoding: Array(blob.kdfParameters)) } catch {
                throw .crypto(error)
            }
            do throws(CryptoError) { return try RecoveryKeys(passphrase: passphrase, parameters: parameters) } catch {
                throw .crypto(error)
            }
        }))
    }

    /// The account's devices.
    public func devices() throws(ClientError) -> [DeviceInfo] {
        _ = try core.requireAccount()
        return core.membership.devices(me: core.me)
    }

    /// This device's removal, once it verified it in the signed log (when, and by which device).
    public var removal: DeviceRemoval? {
        guard core.removedFromAccount,
            let me = core.membership.devices(me: core.me).first(where: \.isThisDevice),
            let at = me.removedAt, let by = me.removedBy
        else { return nil }
        return DeviceRemoval(at: at, by: by)
    }

    /// The newest security events recorded in the local store (oldest first).
    public func recordedSecurityEvents() throws(ClientError) -> [SecurityEvent] {
        try core.store.read { tx in try tx.events() }
    }
}

/// The signed log entry that removed this device, as a person reads it.
public struct DeviceRemoval: Sendable, Hashable {
    /// When (the removing device's clock, ms since the Unix epoch).
    public let at: UInt64
    /// The device that removed this one.
    public let by: DeviceID
}

/// A pairing started on a new device: show ``text`` (as a QR code or copyable text) on the new
/// device, enter it on an existing one.
public struct LinkInvitation: Sendable {
    let payload: PairingPayload
    /// The pairing payload as text (`cloak1:…`).
    public var text: String { payload.text }
    /// When it stops being valid (ms since the Unix epoch).
    public var expiresAtMillis: UInt64 { payload.expiresAtMs }
}

/// A link waiting for the user's confirmation that both devices show the same string.
public struct PendingLink: Sendable {
    let log: DeviceLog
    let envelopes: [KeyEnvelope]
    /// Six digits to compare with the accepting device's.
    public let shortAuthenticationString: String
    /// The account being joined.
    public var accountID: AccountID { log.account }
}
