public import CloakCrypto
public import CloakProtocol

extension CloakClient {
    /// Creates a new account with this device as its only member.
    public func createAccount() async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.createAccount() }
    }

    /// The account's devices.
    public func devices() throws(ClientError) -> [DeviceInfo] {
        try engine.devices()
    }

    // MARK: Linking (new device; PROTOCOL.md §21)

    /// Starts linking this (new) device: returns the invitation to show (the same one again
    /// while an unfinished invitation of this device is valid, so a restart resumes it).
    public func beginLink() throws(ClientError) -> LinkInvitation {
        try engine.beginLink()
    }

    /// Waits until an existing device offered the account, verifies the offer and returns the
    /// short authentication string to compare with the one the other device shows. Nothing is
    /// trusted until ``confirmLink(_:codesMatch:pollMillis:)``.
    public func awaitLink(_ invitation: LinkInvitation, pollMillis: UInt64 = 500) async throws(ClientError) -> PendingLink {
        let outcome = try await run { () throws(ClientError) in engine.awaitLink(invitation, pollMillis: pollMillis) }
        guard case .pendingLink(let link) = outcome else { throw .pairingNotCompleted }
        return link
    }

    /// The user's answer after comparing the codes. With `codesMatch` false the other device
    /// is told and nothing joins. With true, waits until the other device's user said yes too
    /// and it added this device, then stores the account and its keys (``ClientError/linkDeclined``
    /// if the other side said no). Call ``startSync()`` next to download the history.
    public func confirmLink(_ link: PendingLink, codesMatch: Bool, pollMillis: UInt64 = 500) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.confirmLink(link, codesMatch: codesMatch, pollMillis: pollMillis) }
    }

    // MARK: Linking (existing device)

    /// Offers the account to a new device's invitation (a typo in it is refused as
    /// ``PairingError/typo``): returns the code the user must compare on both devices. Nothing is
    /// added until ``completeLink(_:codesMatch:pollMillis:)`` and the new device both say yes.
    public func acceptLink(_ invitationText: String) async throws(ClientError) -> LinkOffer {
        let outcome = try await run { () throws(ClientError) in try engine.acceptLink(invitationText) }
        guard case .linkOffer(let offer) = outcome else { throw .pairingNotCompleted }
        return offer
    }

    /// The user's answer after comparing the codes. False: the new device is told, nothing is
    /// added. True: waits for the new device's answer; only when it is yes too is the device
    /// added and every key sealed to it (``ClientError/linkDeclined`` if it said no).
    public func completeLink(_ offer: LinkOffer, codesMatch: Bool, pollMillis: UInt64 = 500) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.completeLink(offer, codesMatch: codesMatch, pollMillis: pollMillis) }
    }

    // MARK: Removal

    /// This device's removal (when, and by which device), once it verified it in the signed log;
    /// nil while it is a member.
    public var removal: DeviceRemoval? { engine.removal }

    /// Removes a device (a lost phone): a new key epoch starts that the removed device never
    /// receives, and the server refuses its connections from now on.
    public func removeDevice(_ device: DeviceID) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.removeDevice(device) }
    }

    // MARK: Recovery (PROTOCOL.md §22)

    /// Whether the account has a recovery secret (words or passphrase) now: setting another
    /// replaces it, which must be asked for (`replacing: true`).
    public var recoveryIsSet: Bool { engine.recoveryIsSet }

    /// Sets a random recovery secret and returns it as 12 words to show the user once. With
    /// them, a fresh device can restore the account (``recover(words:)``). Replacing a secret
    /// (`replacing`, after asking the user) starts a new key epoch: the old secret opens
    /// nothing written afterwards.
    public func setUpRecoveryWords(replacing: Bool = false) async throws(ClientError) -> String {
        var words = ""
        _ = try await run { () throws(ClientError) in
            let started = try engine.setUpRecoveryWords(replacing: replacing)
            words = started.words
            return started.flow
        }
        return words
    }

    /// Sets a recovery passphrase: hardened by the server's oblivious PRF and Argon2id, so
    /// every guess needs the server, which counts them. Refuses an empty or weak one
    /// (``ClientError/weakPassphrase(_:)``); replacing a secret must be asked for (`replacing`).
    public func setUpRecoveryPassphrase(_ passphrase: String, replacing: Bool = false) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in try engine.setUpRecoveryPassphrase(passphrase, replacing: replacing) }
    }

    /// How a candidate recovery passphrase scores against Cloak's floor.
    public nonisolated static func passphraseStrength(_ passphrase: String) -> PassphraseStrength {
        ClientEngine.passphraseStrength(passphrase)
    }

    /// Restores the account on this fresh device from recovery words: the device joins the
    /// device log as a new device (signed by the recovery key) and receives every epoch key.
    public func recover(words: String) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in try engine.recover(words: words) }
    }

    /// Restores the account on this fresh device from its passphrase. The account id is needed
    /// because a passphrase alone does not identify an account. The server counts every attempt
    /// as a guess (and tells the account's devices) until the recovery key authenticates.
    public func recover(account: AccountID, passphrase: String) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in try engine.recover(account: account, passphrase: passphrase) }
    }

    /// Whether a recovery stopped after it may have added this device (``resumeRecovery()``).
    public var hasInterruptedRecovery: Bool { engine.hasInterruptedRecovery }

    /// Finishes an interrupted recovery without the secret, or says to run it again
    /// (``ClientError/recoveryInterrupted``).
    public func resumeRecovery() async throws(ClientError) {
        _ = try await run { () throws(ClientError) in try engine.resumeRecovery() }
    }

    /// Ends a passphrase-recovery lockout someone caused by guessing (the secret stays).
    public func resetRecoveryLockout() async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.resetRecoveryLockout() }
    }
}
