import CloakCrypto
import CloakProtocol
import Logging
import Metrics
import Foundation

extension ServerConnection {
    /// AppendDeviceLog: the authenticated signer (any member's entry, for `restore`) extends the
    /// head (checked in the registry).
    func appendDeviceLog(_ request: Cloak_V1_AppendDeviceLog, _ context: RequestContext) throws(Failure) {
        let bytes = Array(request.entry)
        do {
            let entry = try DeviceLogEntry(wire: bytes, maxCutoffs: registry.configuration.limits.maxRemovalCutoffs)
            try registry.appendDeviceLog(
                id, session: context.session, requestID: context.requestID, entry: entry, bytes: bytes,
                restore: request.restore)
        } catch {
            if case .unsupportedVersion = error { throw .request(.invalidDeviceLog(error.message)) }
            throw .request(error)
        }
    }

    /// AppendDeviceLog with `restore` before authentication: anyone may give a restored server
    /// back a log entry it forgot, because the chain rules decide alone (signed by a member
    /// active at the previous head, the next index, the head's hash): a device whose own add
    /// entry the server lost can restore it and then authenticate (PROTOCOL.md §18, ADV-44).
    mutating func restoreAppendBeforeAuthentication(
        _ request: Cloak_V1_AppendDeviceLog, frame: Cloak_V1_Frame, loaded: AccountID?
    ) throws(Failure) -> StoreRead? {
        let account: AccountID
        do { account = try AccountID(validating: request.accountID, field: "account_id") } catch {
            throw .request(error)
        }
        if case .load(let read) = try currentLog(account, frame: frame, loaded: loaded, unknown: .request(.unknownAccount)) {
            return read
        }
        let bytes = Array(request.entry)
        do {
            let entry = try DeviceLogEntry(wire: bytes, maxCutoffs: registry.configuration.limits.maxRemovalCutoffs)
            try registry.appendDeviceLog(
                id, session: Session(account: account, device: entry.signer, isRecoveryKey: false),
                requestID: frame.requestID, entry: entry, bytes: bytes, restore: true)
        } catch {
            if case .unsupportedVersion = error { throw .request(.invalidDeviceLog(error.message)) }
            throw .request(error)
        }
        return nil
    }

    /// PutKeyEnvelopes: all or nothing; each must be the session's account, sent and signed by
    /// the authenticated member, to a member, for an epoch that exists. A conversation key goes
    /// only to an assistant whose scope holds the conversation (PROTOCOL.md §29): the server never
    /// stores an epoch key for an assistant, nor a key outside its scope.
    func putKeyEnvelopes(_ request: Cloak_V1_PutKeyEnvelopes, _ context: RequestContext) throws(Failure) {
        let log = context.log
        guard let senderKey = log.members[context.session.device]?.signingKey else {
            throw .request(.deviceNotActive)
        }
        var envelopes: [WriteBatch.EnvelopeRow] = []
        for message in request.envelopes {
            if !message.conversationID.isEmpty {
                envelopes.append(try conversationKeyRow(message, senderKey: senderKey, context))
                continue
            }
            let envelope: KeyEnvelope
            do { envelope = try KeyEnvelope(message: message) } catch {
                if case .unsupportedVersion = error { throw .request(.invalidField(error.message)) }
                throw .request(error)
            }
            guard envelope.account == context.session.account else {
                throw .request(.invalidField("envelope account_id is not the authenticated account"))
            }
            guard envelope.sender == context.session.device else { throw .request(.wrongAuthor) }
            let recipientIsMember =
                log.isActive(envelope.recipient, atIndex: log.headIndex) || log.recoveryKey?.id == envelope.recipient
            guard recipientIsMember else { throw .request(.invalidField("envelope recipient is not a member")) }
            guard envelope.epoch >= 1, envelope.epoch <= log.currentEpoch else {
                throw .request(.invalidField("envelope epoch \(envelope.epoch) does not exist"))
            }
            guard senderKey.isValidSignature(envelope.signature, for: envelope.signedMessage) else {
                throw .request(.badSignature("key envelope"))
            }
            envelopes.append(.init(
                account: envelope.account, recipient: envelope.recipient, epoch: envelope.epoch,
                bytes: FrameCodec.serialize(message)))
        }
        do {
            try registry.putKeyEnvelopes(
                id, session: context.session, requestID: context.requestID, envelopes: envelopes)
        } catch { throw .request(error) }
    }

    /// One conversation-key envelope of a PutKeyEnvelopes, checked like an epoch-key envelope
    /// and against its recipient's scope.
    private func conversationKeyRow(_ message: Cloak_V1_KeyEnvelope, senderKey: Ed25519PublicKey, _ context: RequestContext)
        throws(Failure) -> WriteBatch.EnvelopeRow
    {
        let log = context.log
        let envelope: ConversationKeyEnvelope
        do { envelope = try ConversationKeyEnvelope(message: message) } catch {
            if case .unsupportedVersion = error { throw .request(.invalidField(error.message)) }
            throw .request(error)
        }
        guard envelope.account == context.session.account else {
            throw .request(.invalidField("envelope account_id is not the authenticated account"))
        }
        guard envelope.sender == context.session.device else { throw .request(.wrongAuthor) }
        guard let assistant = log.assistants[envelope.recipient], assistant.endedAt == nil else {
            throw .request(.invalidField("a conversation key's recipient is not an active assistant"))
        }
        guard assistant.current.covers(envelope.conversation) else {
            throw .request(.outOfScope("conversation \(envelope.conversation) is not in the recipient's scope"))
        }
        guard envelope.epoch >= 1, envelope.epoch <= log.currentEpoch else {
            throw .request(.invalidField("envelope epoch \(envelope.epoch) does not exist"))
        }
        guard senderKey.isValidSignature(envelope.signature, for: envelope.signedMessage) else {
            throw .request(.badSignature("conversation-key envelope"))
        }
        return .init(
            account: envelope.account, recipient: envelope.recipient, epoch: envelope.epoch,
            bytes: FrameCodec.serialize(message), conversation: envelope.conversation)
    }

    /// PutSnapshot: checked like a change set, then the lineage (in the registry).
    func putSnapshot(_ request: Cloak_V1_PutSnapshot, _ context: RequestContext) throws(Failure) {
        let bytes = FrameCodec.serialize(request.snapshot)
        let limit = registry.configuration.limits.maxChangeSetBytes
        guard bytes.count <= limit else { throw .request(.changeSetTooLarge(size: bytes.count, limit: limit)) }
        let snapshot: Snapshot
        do { snapshot = try Snapshot(message: request.snapshot) } catch {
            if case .unsupportedVersion = error { throw .request(.invalidField(error.message)) }
            throw .request(error)
        }
        let header = snapshot.header
        guard header.account == context.session.account else {
            throw .request(.invalidField("snapshot account_id is not the authenticated account"))
        }
        guard header.author == context.session.device else { throw .request(.wrongAuthor) }
        let log = context.log
        guard let head = log.hash(atIndex: header.deviceLogIndex), head == header.deviceLogHead,
            log.isActive(header.author, atIndex: header.deviceLogIndex),
            let key = log.members[header.author]?.signingKey
        else {
            throw .request(.invalidField("device_log_index/device_log_head do not name a log entry the author was active at"))
        }
        do {
            try snapshot.verifySignature(key)
            try registry.putSnapshot(
                id, session: context.session, requestID: context.requestID, snapshot: snapshot, bytes: bytes)
        } catch { throw .request(error) }
    }

    /// MailboxPut: an opaque, size-limited, expiring slot.
    func putMailbox(_ request: Cloak_V1_MailboxPut, _ context: RequestContext) throws(Failure) {
        guard request.mailboxID.count == 16 else { throw .request(.invalidField("mailbox_id must be 16 bytes")) }
        let limit = registry.configuration.limits.maxMailboxBytes
        guard request.payload.count <= limit else {
            throw .request(.invalidField("mailbox payload of \(request.payload.count) bytes exceeds \(limit)"))
        }
        let cap = registry.configuration.maxMailboxTTLSeconds
        let ttl = request.ttlSeconds == 0 ? cap : min(request.ttlSeconds, cap)
        let row = WriteBatch.MailboxRow(
            id: Array(request.mailboxID), payload: Array(request.payload),
            expiresAtMs: context.nowMs + UInt64(ttl) * 1000)
        registry.putMailbox(id, session: context.session, requestID: context.requestID, row: row)
    }

    /// PutRecovery: the account's blob, naming the log's current recovery key.
    func putRecovery(_ request: Cloak_V1_PutRecovery, _ context: RequestContext) throws(Failure) {
        let blob = request.blob
        guard Array(blob.accountID) == context.session.account.bytes else {
            throw .request(.invalidField("recovery blob account_id is not the authenticated account"))
        }
        let key: DeviceID
        do { key = try DeviceID(validating: blob.recoveryKeyID, field: "recovery_key_id") } catch {
            throw .request(error)
        }
        // Recovery words (0x02), or a passphrase enrollment (0x03) under a key version this server
        // holds; the unhardened passphrase form (0x01) is no longer taken (it allowed offline
        // guessing from a database copy, §22).
        let parameters = Array(blob.kdfParameters)
        if parameters != RecoverySecret.wordsParameterMarker {
            guard let enrollment = try? RecoveryEnrollment(decoding: parameters) else {
                throw .request(.invalidField("kdf_parameters must be recovery words (0x02) or a passphrase enrollment (0x03)"))
            }
            guard registry.configuration.recoveryKeys?.has(version: enrollment.keyVersion) == true else {
                throw .request(.invalidField("kdf_parameters name recovery key version \(enrollment.keyVersion), which this server lacks"))
            }
        }
        let record = RecoveryRecord(
            account: context.session.account, recoveryKeyID: key, bytes: FrameCodec.serialize(blob))
        do {
            try registry.putRecovery(id, session: context.session, requestID: context.requestID, record: record)
        } catch { throw .request(error) }
    }
}

/// An account's current log, or the store read that loads it first.
enum LogOrLoad {
    case log(DeviceLog)
    case load(StoreRead)
}

extension ServerConnection {
    /// The account's current log; when it is not cached, or cached but stale, starts loading it
    /// (the request is replayed once loaded) and returns that read. Still missing after the load:
    /// `unknown`; loaded but stale again (another process moved it): retryable, not unknown.
    mutating func currentLog(_ account: AccountID, frame: Cloak_V1_Frame, loaded: AccountID?, unknown: Failure)
        throws(Failure) -> LogOrLoad
    {
        switch registry.lookup(account) {
        case .needsLoad(let cached):
            if loaded == account, cached { throw .request(.internalError) }
            guard loaded != account else { throw unknown }
            registry.beginLoad(id, account: account)
            pending = .load(account: account, retry: frame)
            return .load(.account(account))
        case .ready(let current):
            return .log(current)
        }
    }
}
