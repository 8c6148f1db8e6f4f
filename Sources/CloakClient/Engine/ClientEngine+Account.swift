@_spi(Randomness) public import CloakCrypto
@_spi(Randomness) public import CloakProtocol
import Foundation
import SwiftProtobuf

// The account's lifecycle: each starts a flow whose result arrives as
// `Effect.flowFinished(id, result)`.
extension ClientEngine {
    /// Creates a new account with this device as its only member.
    public func createAccount() -> FlowID { startFlow(CreateAccountFlow()) }

    // MARK: Linking, new device (PROTOCOL.md §21)

    /// Starts linking this (new) device: the invitation to show on it. While an invitation this
    /// device made is still valid and unfinished (a crash, a closed app), the same one comes back
    /// and the link resumes where it stopped.
    public func beginLink() throws(ClientError) -> LinkInvitation {
        guard core.account == nil else { throw .alreadyInitialized }
        if let pending = try core.pendingLink() { return LinkInvitation(payload: pending.payload) }
        let payload = PairingPayload.create(
            signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey,
            nowMs: core.now(), random: core.random)
        try core.savePendingLink(PendingLinkState(payload: payload, stage: .invited))
        return LinkInvitation(payload: payload)
    }

    /// Waits (polling) until an existing device offered the account, and verifies the offer;
    /// finishes with ``FlowOutcome/pendingLink(_:)``: the code to compare. Nothing is trusted yet.
    public func awaitLink(_ invitation: LinkInvitation, pollMillis: UInt64 = 500) -> FlowID {
        startFlow(AwaitLinkFlow(payload: invitation.payload, pollMillis: pollMillis))
    }

    /// The user's answer after comparing the codes. No: the other device is told and nothing
    /// joins. Yes: waits until the other device's user said yes too and it added this device,
    /// then checks the log and keys and keeps the account (``ClientError/linkDeclined`` when the
    /// other side said no).
    public func confirmLink(_ link: PendingLink, codesMatch: Bool, pollMillis: UInt64 = 500) -> FlowID {
        startFlow(JoinLinkFlow(payload: link.payload, accepted: codesMatch, pollMillis: pollMillis))
    }

    // MARK: Linking, existing device

    /// Offers the account to a new device's invitation (refusing a typo in it as a typo); finishes
    /// with ``FlowOutcome/linkOffer(_:)``: the code to compare. Nothing is committed yet.
    public func acceptLink(_ invitationText: String) throws(ClientError) -> FlowID {
        let payload: PairingPayload
        do { payload = try PairingPayload(text: invitationText, nowMs: core.now()) } catch { throw .pairing(error) }
        return startFlow(OfferLinkFlow(payload: payload))
    }

    /// The user's answer after comparing the codes. No: the new device is told, nothing is
    /// added. Yes: once the new device's user said yes too, adds it, seals every key to it and
    /// tells it (``ClientError/linkDeclined`` when the new device said no).
    public func completeLink(_ offer: LinkOffer, codesMatch: Bool, pollMillis: UInt64 = 500) -> FlowID {
        startFlow(CommitLinkFlow(payload: offer.payload, accepted: codesMatch, pollMillis: pollMillis))
    }

    // MARK: Recovery (PROTOCOL.md §22)

    /// Whether the account has a recovery secret (words or passphrase) now.
    public var recoveryIsSet: Bool { core.log?.recoveryKey != nil }

    /// Sets random recovery words; returns them (to show once) and the flow storing them.
    /// Replacing a secret must be asked for (`replacing`): it starts a new key epoch and the old
    /// secret stops working.
    public func setUpRecoveryWords(replacing: Bool = false) throws(ClientError) -> (words: String, flow: FlowID) {
        try checkReplacement(replacing)
        let secret = RecoverySecret.random(using: core.random)
        return (secret.words, startFlow(SetRecoveryFlow(secret: .words(secret.keys))))
    }

    /// Sets a recovery passphrase, hardened by the server's oblivious PRF and Argon2id. Refuses
    /// an empty or weak one (``ClientError/weakPassphrase(_:)``, below
    /// ``PassphraseStrength/minimumBits``); replacing a secret must be asked for (`replacing`).
    public func setUpRecoveryPassphrase(_ passphrase: String, replacing: Bool = false) throws(ClientError) -> FlowID {
        try checkReplacement(replacing)
        let strength = Self.passphraseStrength(passphrase)
        guard strength.isAcceptable else { throw .weakPassphrase(strength) }
        let normalized: SecretBytes
        do { normalized = try RecoveryPassphrase.normalized(passphrase) } catch { throw .weakPassphrase(strength) }
        return startFlow(SetRecoveryFlow(secret: .passphrase(normalized: normalized)))
    }

    /// How a candidate recovery passphrase scores against Cloak's floor (for a strength meter).
    public static func passphraseStrength(_ passphrase: String) -> PassphraseStrength {
        PassphraseStrength(estimating: passphrase, contextWords: ["cloak"])
    }

    private func checkReplacement(_ replacing: Bool) throws(ClientError) {
        _ = try core.requireAccount()
        if recoveryIsSet, !replacing { throw .recoveryAlreadySet }
    }

    /// Restores the account on this fresh device from recovery words.
    public func recover(words: String) throws(ClientError) -> FlowID {
        let secret: RecoverySecret
        do { secret = try RecoverySecret(words: words) } catch { throw .recoveryWords(error) }
        return startFlow(RecoverFlow(secret: .words(secret.keys)))
    }

    /// Restores the account on this fresh device from its passphrase (the account id is needed
    /// because a passphrase alone does not identify an account). The server counts the attempt
    /// as a guess until the recovery key authenticates.
    public func recover(account: AccountID, passphrase: String) throws(ClientError) -> FlowID {
        let normalized: SecretBytes
        do { normalized = try RecoveryPassphrase.normalized(passphrase) } catch { throw .wrongRecoverySecret }
        return startFlow(RecoverFlow(secret: .passphrase(account: account, normalized: normalized)))
    }

    /// Whether a recovery stopped after it may have added this device (a crash): call
    /// ``resumeRecovery()``.
    public var hasInterruptedRecovery: Bool { core.account == nil && ((try? core.pendingRecovery()) ?? nil) != nil }

    /// Finishes an interrupted recovery without the secret if this device was added, or forgets
    /// it (``ClientError/recoveryInterrupted``: run the recovery again).
    public func resumeRecovery() throws(ClientError) -> FlowID {
        guard let pending = try core.pendingRecovery() else { throw .recoveryInterrupted }
        return startFlow(try ResumeRecoveryFlow(pending: pending))
    }

    /// Removes a device from the account (a new key epoch it never receives).
    public func removeDevice(_ device: DeviceID) -> FlowID { startFlow(RemoveDeviceFlow(device: device)) }

    /// Ends a passphrase-recovery lockout (after the user saw the attempts and keeps the secret).
    public func resetRecoveryLockout() -> FlowID {
        startFlow(SimpleRequestFlow(.resetRecoveryLockout(Cloak_V1_ResetRecoveryLockout())))
    }

    /// Finishes, after a crash, a link this device agreed to (both users said yes): started by
    /// ``startSync()``; nil when nothing waits.
    func resumeAcceptance() -> FlowID? {
        guard core.account != nil, let pending = try? core.pendingAcceptance() else { return nil }
        return startFlow(CommitLinkFlow(payload: pending.payload, accepted: true, pollMillis: 500, resuming: true))
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
    /// The pairing payload as text (`cloak1:…`, with a checksum).
    public var text: String { payload.text }
    /// When it stops being valid (ms since the Unix epoch).
    public var expiresAtMillis: UInt64 { payload.expiresAtMs }
}

/// An existing device's offer to a new device, waiting for the user's comparison of the codes
/// (``ClientEngine/completeLink(_:codesMatch:pollMillis:)``).
public struct LinkOffer: Sendable {
    let payload: PairingPayload
    /// Six digits to compare with the new device's.
    public let shortAuthenticationString: String
    /// The device being invited.
    public var newDevice: DeviceID { payload.deviceID }
}

/// An offer the new device verified, waiting for its user's comparison of the codes.
public struct PendingLink: Sendable {
    let payload: PairingPayload
    let log: DeviceLog
    /// Six digits to compare with the existing device's.
    public let shortAuthenticationString: String
    /// The account being joined.
    public var accountID: AccountID { log.account }

    /// Verifies an offered log from genesis (the new device must not be in it yet) and
    /// computes the code over it.
    init(payload: PairingPayload, offeredLog wires: [[UInt8]]) throws(ClientError) {
        let log: DeviceLog
        do { log = try DeviceLog(verifying: wires.map { w throws(ProtocolError) in try DeviceLogEntry(wire: w) }) } catch {
            throw .deviceLog(.invalid(error))
        }
        guard log.members[payload.deviceID] == nil else { throw .pairingReused }
        self.payload = payload
        self.log = log
        shortAuthenticationString = payload.shortAuthenticationString(account: log.account, offeredHead: log.head)
    }
}
