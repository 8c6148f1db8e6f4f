import CloakCrypto
import CloakProtocol
import Logging
import Metrics
import Foundation

extension ServerConnection {
    /// Register: a verified genesis whose account is not in the store yet.
    mutating func register(_ request: Cloak_V1_Register, requestID: UInt64, nowMs: UInt64) throws(Failure) -> StoreRead? {
        let genesis = Array(request.genesis)
        let log: DeviceLog
        do {
            let entry = try DeviceLogEntry(wire: genesis, maxCutoffs: registry.configuration.limits.maxRemovalCutoffs)
            log = try DeviceLog(genesis: entry)
        } catch let error {
            if case .badSignature = error { throw .request(error) }
            throw .request(.invalidDeviceLog(error.message))
        }
        if case .ready = registry.lookup(log.account) { throw .request(.accountExists) }
        guard registry.allowRegistration(id, nowMs: nowMs) else { throw .request(.rateLimited) }
        registry.beginLoad(id, account: log.account)
        pending = .register(requestID: requestID, log: log, genesis: genesis)
        return .account(log.account)
    }

    /// Authenticate: the device (or recovery key) must be a member now and sign this
    /// connection's nonce.
    mutating func authenticate(
        _ request: Cloak_V1_Authenticate, frame: Cloak_V1_Frame, nowMs: UInt64, loaded: AccountID?
    ) throws(Failure) -> StoreRead? {
        guard ProtocolVersion.supported.contains(request.version) else {
            throw .connection(.unsupportedVersion(request.version))
        }
        let account: AccountID
        let device: DeviceID
        do {
            account = try AccountID(validating: request.accountID, field: "account_id")
            device = try DeviceID(validating: request.deviceID, field: "device_id")
        } catch { throw .request(error) }
        guard registry.session(id) == nil else { throw .request(.unexpectedFrame("already authenticated")) }
        let log: DeviceLog
        switch try currentLog(account, frame: frame, loaded: loaded, unknown: .connection(.unknownAccount)) {
        case .load(let read): return read
        case .log(let current): log = current
        }
        let key: Ed25519PublicKey
        let isRecoveryKey: Bool
        var isAssistant = false
        if log.isActive(device, atIndex: log.headIndex), let member = log.members[device] {
            (key, isRecoveryKey) = (member.signingKey, false)
        } else if let assistant = log.assistants[device], assistant.endedAt == nil {
            // An assistant (PROTOCOL.md §29): granted, and not past its expiry by this clock.
            guard nowMs < assistant.current.expiresAtMs else { throw .connection(.grantExpired) }
            (key, isRecoveryKey, isAssistant) = (assistant.signingKey, false, true)
        } else if let recovery = log.recoveryKey, recovery.id == device {
            (key, isRecoveryKey) = (recovery.member.signingKey, true)
            guard registry.allowRecoveryAuthentication(account, nowMs: nowMs) else { throw .request(.rateLimited) }
        } else {
            // Another process sharing the store may have added the device since this one read
            // the log: read it again before refusing (at most once a second per account: anyone
            // may send an Authenticate). Refusals that may be transient are retryable.
            if registry.configuration.sharedStore, loaded != account {
                switch registry.markForReload(account, rateLimitedAtMs: nowMs) {
                case .marked:
                    registry.beginLoad(id, account: account)
                    pending = .load(account: account, retry: frame)
                    return .account(account)
                case .writesInFlight: throw .request(.internalError)
                case .rateLimited: throw .request(.rateLimited)
                }
            }
            throw .connection(.deviceNotActive)
        }
        guard
            AuthChallenge.verify(
                Array(request.signature), serverNonce: nonce, account: account, device: device, key: key)
        else { throw .connection(.authFailed) }
        let result: Cloak_V1_AuthResult
        let notices: [Cloak_V1_AccountNotice]
        do {
            (result, notices) = try registry.authenticate(
                id,
                session: Session(account: account, device: device, isRecoveryKey: isRecoveryKey, isAssistant: isAssistant),
                nowMs: nowMs)
        } catch {
            switch error {
            case .unexpectedFrame, .internalError: throw .request(error)
            default: throw .connection(error)
            }
        }
        registry.logger.debug(
            "authenticated",
            metadata: [
                "connection": "\(id)", "account": "\(account)", "recovery": "\(isRecoveryKey)",
                "assistant": "\(isAssistant)",
            ])
        send(.authResult(result), requestID: frame.requestID)
        for notice in notices { send(.accountNotice(notice), requestID: 0) }
        return nil
    }

    /// MailboxTake (allowed before authentication): single-use read of a pairing slot.
    mutating func takeMailbox(_ request: Cloak_V1_MailboxTake, requestID: UInt64, nowMs: UInt64) throws(Failure)
        -> StoreRead?
    {
        guard request.mailboxID.count == 16 else { throw .request(.invalidField("mailbox_id must be 16 bytes")) }
        pending = .mailbox(requestID: requestID)
        return .takeMailbox(Array(request.mailboxID), nowMs: nowMs)
    }

    // MARK: Read results

    /// Continues a request with the store's answer.
    mutating func resume(_ waiting: Pending, with result: StoreReadResult, nowMs: UInt64) throws(Failure) -> StoreRead? {
        switch (waiting, result) {
        case (.load(let account, let retry, let attempt), .account(let record)):
            defer { registry.releaseLoad(id, account: account) }
            switch install(account, record: record) {
            case .failed:
                throw .request(.internalError)
            case .stale:
                // Another process committed a newer version while this read ran: read again,
                // twice at most (then INTERNAL: the client retries).
                guard attempt < 2 else { throw .request(.internalError) }
                registry.beginLoad(id, account: account)
                pending = .load(account: account, retry: retry, attempt: attempt + 1)
                return .account(account)
            case .installed:
                return run(retry, nowMs: nowMs, loaded: account)
            }
        case (.register(let requestID, let log, let genesis), .account(let record)):
            do {
                try registry.register(id, requestID: requestID, log: log, genesis: genesis, existsInStore: record != nil)
            } catch { throw .request(error) }
            return nil
        case (.deviceLog(let requestID), .deviceLog(let entries)):
            guard let entries else { throw .request(.unknownAccount) }
            var body = Cloak_V1_DeviceLogEntries()
            body.entries = entries.map { Data($0) }
            send(.deviceLogEntries(body), requestID: requestID)
        case (.mailbox(let requestID), .mailbox(let payload)):
            var body = Cloak_V1_MailboxContent()
            body.payload = Data(payload ?? [])
            send(.mailboxContent(body), requestID: requestID)
        case (.recovery(let requestID), .recovery(let record)):
            guard let record else { throw .request(.notFound) }
            guard registry.allowRecoveryFetch(record.account, nowMs: nowMs) else { throw .request(.rateLimited) }
            guard let blob = try? FrameCodec.parse(Cloak_V1_RecoveryBlob.self, from: record.bytes, what: "recovery blob") else {
                throw .request(.internalError)
            }
            // Only recovery words are served here: a passphrase enrollment's parameters come with
            // a counted evaluation alone, and its key id must not be testable (§22, ADV-46).
            guard Array(blob.kdfParameters) == RecoverySecret.wordsParameterMarker else { throw .request(.notFound) }
            send(.recoveryBlob(blob), requestID: requestID)
        case (.catchUp(let catchUp), .changeSets(let page)):
            return continueCatchUp(catchUp, page: page)
        case (.push(let push), .changeSetRefs(let refs)):
            return stage(push, adding: refs)
        case (.anchor(let subscription), .cursorAnchor(let stored)):
            return try anchorChecked(subscription, stored: stored)
        case (.heads(let requestID, let limit), .chainHeads(let heads)):
            send(.chainHeads(HeadsEncoder.reply(heads, limit: limit)), requestID: requestID)
        case (.fetchChangeSets(let requestID), .changeSets(let items)):
            registry.metrics.deliveries.increment(by: items.count)
            registry.output.send(DeliverEncoder.encode(requestID: requestID, items: items, caughtUp: true), to: id)
        case (.envelopes(let requestID), .records(let records)):
            var body = Cloak_V1_KeyEnvelopes()
            body.envelopes = records.compactMap { try? FrameCodec.parse(Cloak_V1_KeyEnvelope.self, from: $0, what: "key envelope") }
            send(.keyEnvelopes(body), requestID: requestID)
        case (.snapshots(let requestID), .records(let records)):
            send(.snapshots(snapshotList(records)), requestID: requestID)
        default:
            registry.logger.error("store answered a different read", metadata: ["connection": "\(id)"])
            throw .request(.internalError)
        }
        return nil
    }

    /// How installing a loaded account ended: in force, older than what the registry knows the
    /// store holds (read again), or its stored device log does not verify.
    private enum Install {
        case installed, stale, failed
    }

    /// Verifies a loaded device log (outside the registry's lock) and installs the account
    /// (``SyncRegistry/installLoaded(_:account:record:log:)``).
    private func install(_ account: AccountID, record: AccountRecord?) -> Install {
        guard let record else { return .installed }
        do {
            let log = try registry.verifiedLog(of: record, extending: registry.cachedLog(account))
            let installed = registry.installLoaded(id, account: account, record: record, log: log)
            return installed.stale ? .stale : .installed
        } catch {
            return .failed
        }
    }

    /// Newest snapshots that fit one frame, in conversation order.
    private func snapshotList(_ records: [[UInt8]]) -> Cloak_V1_SnapshotList {
        var list = Cloak_V1_SnapshotList()
        var bytes = 0
        for record in records {
            guard bytes + record.count + 8 <= registry.configuration.framePayloadBudget else { break }
            guard let snapshot = try? FrameCodec.parse(Cloak_V1_Snapshot.self, from: record, what: "snapshot") else { continue }
            bytes += record.count + 8
            list.snapshots.append(snapshot)
        }
        return list
    }
}
