import CloakCrypto
public import CloakProtocol
import Foundation
import Logging
import SwiftProtobuf

/// A pairing started on a new device: show ``text`` (as a QR code or copyable text) on the new
/// device, enter it on an existing one.
public struct LinkInvitation: Sendable {
    let payload: PairingPayload
    /// The pairing payload as text (`cloak1:…`).
    public var text: String { payload.text }
    /// When it stops being valid (ms since the Unix epoch).
    public var expiresAtMillis: UInt64 { payload.expiresAtMs }
}

extension CloakClient {
    /// Creates a new account with this device as its only member.
    public func createAccount() async throws(ClientError) {
        let prepared = try core.prepareAccount()
        var session = try await ServerSession.open(transport: transport, url: server, configuration: configuration)
        let connection = session.connection
        defer { Task { await connection.close() } }
        do {
            _ = try await session.request(.register(Cloak_V1_Register.with { $0.genesis = Data(prepared.genesis.wire) }))
        } catch .server(.accountExists) {
            // A retry after a lost reply: the genesis is ours, so the account is too.
        }
        try await session.authenticate(account: prepared.log.account, device: core.me, key: core.identity.signing)
        _ = try await session.request(.putKeyEnvelopes(.with { $0.envelopes = [prepared.envelope.message] }))
        try core.adopt(log: prepared.log, keys: [1: prepared.key])
        logger.info("account created", metadata: ["account": "\(prepared.log.account)"])
    }

    /// The account's devices.
    public func devices() throws(ClientError) -> [DeviceInfo] {
        try core.deviceList()
    }

    // MARK: Linking (new device)

    /// Starts linking this (new) device: returns the invitation to show.
    public func beginLink() throws(ClientError) -> LinkInvitation {
        guard core.account == nil else { throw .alreadyInitialized }
        return LinkInvitation(payload: PairingPayload.create(
            signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey,
            nowMs: core.now(), random: core.random))
    }

    /// Waits until an existing device accepted the invitation, verifies what it left in the
    /// pairing mailbox, and returns the short authentication string to compare with the one
    /// the other device shows. Nothing is trusted until ``confirmLink(_:)``.
    public func awaitLink(_ invitation: LinkInvitation, pollMillis: UInt64 = 500) async throws(ClientError) -> PendingLink {
        let payload = invitation.payload
        while core.now() < payload.expiresAtMs {
            var session = try await ServerSession.open(transport: transport, url: server, configuration: configuration)
            let reply = try await session.request(.mailboxTake(.with { $0.mailboxID = Data(payload.mailboxID) }))
            await session.close()
            if case .mailboxContent(let content) = reply, !content.payload.isEmpty {
                let bundle: Cloak_V1_PairingBundle
                do { bundle = try payload.openBundle(Array(content.payload)) } catch { throw .pairing(error) }
                let (log, entry) = try ClientCore.verifyJoiningLog(
                    bundle.deviceLog.map(Array.init), subject: core.identity.signing.publicKey)
                guard (try? AccountID(validating: bundle.accountID, field: "account_id")) == log.account else {
                    throw .pairing(.bundleRejected)
                }
                let envelopes = bundle.envelopes.compactMap { try? KeyEnvelope(message: $0) }
                return PendingLink(
                    log: log, envelopes: envelopes,
                    shortAuthenticationString: payload.shortAuthenticationString(account: log.account, addEntry: entry.hash))
            }
            try? await Task.sleep(for: .milliseconds(Int64(pollMillis)))
        }
        throw .pairingNotCompleted
    }

    /// Trusts a pending link after the user confirmed both devices show the same string:
    /// stores the account and its keys. Call ``startSync()`` next to download the history.
    public func confirmLink(_ link: PendingLink) throws(ClientError) {
        try core.join(log: link.log, envelopes: link.envelopes, recipient: (core.me, core.identity.agreement))
    }

    // MARK: Linking (existing device)

    /// Accepts a new device's invitation: adds it to the device log, seals every epoch key to
    /// it and leaves the bundle in the pairing mailbox. Returns the short authentication string
    /// the user must see on both devices.
    public func acceptLink(_ invitationText: String) async throws(ClientError) -> String {
        let payload: PairingPayload
        do { payload = try PairingPayload(text: invitationText, nowMs: core.now()) } catch { throw .pairing(error) }
        let newDevice = DeviceID(signingKey: payload.signingKey)
        var session = try await authenticatedSession()
        let connection = session.connection
        defer { Task { await connection.close() } }
        let entry = try await append(in: &session) { () throws(ClientError) in
            try core.prepareAddDevice(signingKey: payload.signingKey, agreementKey: payload.agreementKey)
        }
        _ = try core.commitAppended(entry)
        let envelopes = try core.envelopesForAllEpochs(to: newDevice, payload.agreementKey)
        _ = try await session.request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.message) }))
        guard let state = core.account else { throw .noAccount }
        var bundle = Cloak_V1_PairingBundle()
        bundle.accountID = Data(state.account.bytes)
        bundle.deviceLog = state.log.entries.map { Data($0.wire) }
        bundle.envelopes = envelopes.map(\.message)
        let sealed = payload.sealBundle(bundle, random: core.random)
        _ = try await session.request(.mailboxPut(.with {
            $0.mailboxID = Data(payload.mailboxID)
            $0.payload = Data(sealed)
            $0.ttlSeconds = UInt32(max(1, (payload.expiresAtMs - min(payload.expiresAtMs, core.now())) / 1000))
        }))
        return payload.shortAuthenticationString(account: state.account, addEntry: entry.hash)
    }

    // MARK: Removal

    /// Removes a device (a lost phone): a new key epoch starts that the removed device never
    /// receives, and the server refuses its connections from now on.
    public func removeDevice(_ device: DeviceID) async throws(ClientError) {
        var newKey: SymmetricKey?
        var session = try await authenticatedSession()
        let connection = session.connection
        defer { Task { await connection.close() } }
        let entry = try await append(in: &session) { () throws(ClientError) in
            let prepared = try core.prepareRemove(device)
            newKey = prepared.key
            return prepared.entry
        }
        _ = try core.commitAppended(entry, newEpochKey: newKey)
        // The new epoch's envelopes are queued durably; send them now (the sync connection
        // also re-sends whatever is still queued, so a lost reply loses no key).
        let queued = try core.queuedEnvelopes()
        if !queued.isEmpty {
            _ = try await session.request(.putKeyEnvelopes(.with { $0.envelopes = queued.map(\.envelope) }))
            try core.envelopesDelivered(queued.map(\.id))
        }
        var output = CoreOutput()
        output.pushOutbox = true
        apply(machine.handle(.coreOutput(output), core: core))
    }

    // MARK: Helpers

    func authenticatedSession() async throws(ClientError) -> ServerSession {
        guard let state = core.account else { throw .noAccount }
        var session = try await ServerSession.open(transport: transport, url: server, configuration: configuration)
        do {
            try await session.authenticate(account: state.account, device: core.me, key: core.identity.signing)
        } catch {
            await session.close()
            throw error
        }
        return session
    }

    /// Appends a device-log entry, re-reading the log and re-preparing the entry when another
    /// device appended first (DEVICE_LOG_CONFLICT).
    func append(in session: inout ServerSession, _ prepare: () throws(ClientError) -> DeviceLogEntry)
        async throws(ClientError) -> DeviceLogEntry
    {
        for _ in 0..<3 {
            let entry = try prepare()
            do {
                _ = try await session.request(.appendDeviceLog(.with { $0.entry = Data(entry.wire) }))
                return entry
            } catch .server(.deviceLogConflict) {
                guard let state = core.account else { throw .noAccount }
                let reply = try await session.request(.fetchDeviceLog(.with {
                    $0.accountID = Data(state.account.bytes)
                    $0.fromIndex = 0
                }))
                guard case .deviceLogEntries(let entries) = reply else { throw .server(.unexpectedFrame("log")) }
                publish(try core.receiveDeviceLog(entries.entries.map(Array.init)))
            }
        }
        throw .server(.deviceLogConflict)
    }
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
