import CloakCrypto
import CloakProtocol
import Foundation

/// What an unauthenticated client may ask for, decided per request (PROTOCOL.md §17, §25):
/// the device log only with a member's proof, the recovery words' blob by its key id, an
/// oblivious evaluation of a passphrase guess that is counted, and a pairing answer.
extension ServerConnection {
    /// FetchDeviceLog. In a session: the session's account. Before authentication: only for a
    /// device that is or was a member, or a granted assistant, that signs this connection's nonce (a removed device reads
    /// its signed removal, a restored server's forgotten device learns the length it must give
    /// back); a device the log does not list learns only the log's length.
    mutating func fetchDeviceLog(_ request: Cloak_V1_FetchDeviceLog, frame: Cloak_V1_Frame, loaded: AccountID?)
        throws(Failure) -> StoreRead?
    {
        let account: AccountID
        do { account = try AccountID(validating: request.accountID, field: "account_id") } catch {
            throw .request(error)
        }
        if let session = registry.session(id) {
            guard session.account == account else {
                throw .request(.invalidField("account_id is not the authenticated account"))
            }
            pending = .deviceLog(requestID: frame.requestID)
            return .deviceLog(account, fromIndex: request.fromIndex)
        }
        let device: DeviceID
        do { device = try DeviceID(validating: request.deviceID, field: "device_id") } catch {
            throw .request(.invalidField("before authentication, name the device and sign the log-access proof"))
        }
        let log: DeviceLog
        switch try currentLog(account, frame: frame, loaded: loaded, unknown: .request(.unknownAccount)) {
        case .load(let read): return read
        case .log(let current): log = current
        }
        // A device that is or was a member, or an assistant the log granted (it verifies its
        // own grant from the log before it signs in, PROTOCOL.md §29).
        let key: Ed25519PublicKey? =
            if let member = log.members[device] { member.isRecoveryKey ? nil : member.signingKey } else {
                log.assistants[device]?.signingKey
            }
        guard let key else {
            var body = Cloak_V1_DeviceLogEntries()
            body.logLength = UInt64(log.entries.count)
            send(.deviceLogEntries(body), requestID: frame.requestID)
            return nil
        }
        guard
            LogAccessProof.verify(Array(request.signature), serverNonce: nonce, account: account, device: device, key: key)
        else { throw .connection(.authFailed) }
        pending = .deviceLog(requestID: frame.requestID)
        return .deviceLog(account, fromIndex: request.fromIndex)
    }

    /// FetchRecovery (before authentication): the blob of a recovery-words key, by its id.
    mutating func fetchRecovery(_ request: Cloak_V1_FetchRecovery, requestID: UInt64) throws(Failure) -> StoreRead? {
        guard request.accountID.isEmpty else {
            throw .request(.invalidField("account_id is no longer served: passphrase recovery uses RecoveryEvaluate"))
        }
        let key: DeviceID
        do { key = try DeviceID(validating: request.recoveryKeyID, field: "recovery_key_id") } catch {
            throw .request(error)
        }
        pending = .recovery(requestID: requestID)
        return .recovery(.recoveryKey(key))
    }

    /// RecoveryEvaluate before authentication: one counted passphrase guess (§22). The element is
    /// checked first (nothing counted for garbage), then the address's and the account's
    /// windows, then the account is loaded and the guess counted.
    mutating func evaluateRecovery(
        _ request: Cloak_V1_RecoveryEvaluate, frame: Cloak_V1_Frame, nowMs: UInt64, loaded: AccountID?
    ) throws(Failure) -> StoreRead? {
        let (account, blinded) = try Self.parse(request)
        guard registry.configuration.recoveryKeys != nil else { throw .request(.recoveryUnavailable) }
        if loaded != account {
            let perAddress = registry.configuration.maxRecoveryEvaluationsPerAddress
            guard registry.allowFromAddress(id, \.evaluationsByAddress, limit: perAddress, nowMs: nowMs),
                registry.allowRecoveryFetch(account, nowMs: nowMs)
            else { throw .request(.rateLimited) }
        }
        // An unknown account is answered like one without a passphrase: by a stand-in (§25).
        var known = true
        do {
            if case .load(let read) = try currentLog(account, frame: frame, loaded: loaded, unknown: .request(.unknownAccount)) {
                return read
            }
        } catch {
            guard !error.closes, error.error == .unknownAccount else { throw error }
            known = false
        }
        do {
            try registry.evaluateRecovery(
                id, requestID: frame.requestID, account: account, known: known, blinded: blinded, nowMs: nowMs)
        } catch { throw .request(error) }
        return nil
    }

    /// RecoveryEvaluate in an active device's session: an enrollment under the current key
    /// version (not counted; limited per account).
    func evaluateEnrollment(_ request: Cloak_V1_RecoveryEvaluate, _ context: RequestContext) throws(Failure) {
        let (account, blinded) = try Self.parse(request)
        guard account == context.session.account else {
            throw .request(.invalidField("account_id is not the authenticated account"))
        }
        guard registry.allowRecoveryFetch(account, nowMs: context.nowMs) else { throw .request(.rateLimited) }
        do { send(.recoveryEvaluation(try registry.evaluateEnrollment(context.session, blinded: blinded)), requestID: context.requestID) }
        catch { throw .request(error) }
    }

    /// MailboxPut before authentication: the new device's pairing answer, small and limited per
    /// address (anything else needs a session).
    func putMailboxBeforeAuthentication(_ request: Cloak_V1_MailboxPut, requestID: UInt64, nowMs: UInt64) throws(Failure) {
        guard request.mailboxID.count == 16 else { throw .request(.invalidField("mailbox_id must be 16 bytes")) }
        let limit = registry.configuration.maxAnonymousMailboxBytes
        guard request.payload.count <= limit else {
            throw .request(.invalidField("before authentication a mailbox payload is at most \(limit) bytes"))
        }
        let perAddress = registry.configuration.maxAnonymousMailboxPutsPerAddress
        guard registry.allowFromAddress(id, \.mailboxPutsByAddress, limit: perAddress, nowMs: nowMs) else {
            throw .request(.rateLimited)
        }
        let cap = registry.configuration.maxMailboxTTLSeconds
        let ttl = request.ttlSeconds == 0 ? cap : min(request.ttlSeconds, cap)
        let row = WriteBatch.MailboxRow(
            id: Array(request.mailboxID), payload: Array(request.payload), expiresAtMs: nowMs + UInt64(ttl) * 1000)
        registry.putMailbox(id, session: nil, requestID: requestID, row: row)
    }

    private static func parse(_ request: Cloak_V1_RecoveryEvaluate) throws(Failure) -> (AccountID, OPRF.Element) {
        let account: AccountID
        do { account = try AccountID(validating: request.accountID, field: "account_id") } catch {
            throw .request(error)
        }
        // Exactly 32 bytes, canonical, not the identity (RFC 9497 §3.3): else nothing is counted.
        guard let blinded = try? OPRF.Element(validating: Array(request.blindedElement)) else {
            throw .request(.invalidField("blinded_element is not a valid ristretto255 element"))
        }
        return (account, blinded)
    }
}
