import CloakCrypto
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

    // MARK: Linking (new device)

    /// Starts linking this (new) device: returns the invitation to show.
    public func beginLink() throws(ClientError) -> LinkInvitation {
        try engine.beginLink()
    }

    /// Waits until an existing device accepted the invitation, verifies what it left in the
    /// pairing mailbox, and returns the short authentication string to compare with the one
    /// the other device shows. Nothing is trusted until ``confirmLink(_:)``.
    public func awaitLink(_ invitation: LinkInvitation, pollMillis: UInt64 = 500) async throws(ClientError) -> PendingLink {
        let outcome = try await run { () throws(ClientError) in engine.awaitLink(invitation, pollMillis: pollMillis) }
        guard case .pendingLink(let link) = outcome else { throw .pairingNotCompleted }
        return link
    }

    /// Trusts a pending link after the user confirmed both devices show the same string:
    /// stores the account and its keys. Call ``startSync()`` next to download the history.
    public func confirmLink(_ link: PendingLink) throws(ClientError) {
        try engine.confirmLink(link)
        drain()
    }

    // MARK: Linking (existing device)

    /// Accepts a new device's invitation: adds it to the device log, seals every epoch key to
    /// it and leaves the bundle in the pairing mailbox. Returns the short authentication string
    /// the user must see on both devices.
    public func acceptLink(_ invitationText: String) async throws(ClientError) -> String {
        let outcome = try await run { () throws(ClientError) in try engine.acceptLink(invitationText) }
        guard case .linkCode(let code) = outcome else { throw .pairingNotCompleted }
        return code
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

    // MARK: Recovery

    /// Sets a random recovery secret and returns it as 12 words to show the user once. With
    /// them, a fresh device can restore the account (``recover(words:)``).
    public func setUpRecoveryWords() async throws(ClientError) -> String {
        var words = ""
        _ = try await run { () throws(ClientError) in
            let started = engine.setUpRecoveryWords()
            words = started.words
            return started.flow
        }
        return words
    }

    /// Sets a recovery passphrase (Argon2id with a fresh salt and Cloak's default parameters,
    /// stored on the server with the account; PROTOCOL.md §"Recovery").
    public func setUpRecoveryPassphrase(_ passphrase: String) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in try engine.setUpRecoveryPassphrase(passphrase) }
    }

    /// Restores the account on this fresh device from recovery words: the device joins the
    /// device log as a new device (signed by the recovery key) and receives every epoch key.
    public func recover(words: String) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in try engine.recover(words: words) }
    }

    /// Restores the account on this fresh device from its passphrase. The account id is needed
    /// because a passphrase alone does not identify an account. A wrong passphrase fails
    /// locally after the Argon2id cost, without the server learning whether it was right.
    public func recover(account: AccountID, passphrase: String) async throws(ClientError) {
        _ = try await run { () throws(ClientError) in engine.recover(account: account, passphrase: passphrase) }
    }
}
