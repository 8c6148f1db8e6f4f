@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
import SwiftProtobuf

/// Restores the account on a fresh device from its recovery secret (PROTOCOL.md §22): derive the
/// recovery keys (words: locally, then the blob by the key's id names the account; passphrase:
/// one counted oblivious evaluation by the server, then Argon2id), authenticate as the recovery
/// key, fetch and verify the log, open every epoch key sealed to it, add this device (an entry
/// signed by the recovery key), seal the keys to this device and keep the account.
///
/// Resumable: before appending, the verified log and the opened keys are kept
/// (``PendingRecoveryState``); if this device turns out to be in the log already (an earlier run
/// appended it and stopped), the append is skipped; ``ResumeRecoveryFlow`` finishes without the
/// secret once this device is a member.
struct RecoverFlow: AuthenticatingFlow {
    /// Where the recovery keys come from.
    enum Secret {
        case words(RecoveryKeys)
        case passphrase(account: AccountID, normalized: SecretBytes)
    }

    private enum Stage { case lookup, authenticate, log, envelopes, append, seal }

    let secret: Secret
    private var stage = Stage.lookup
    private var blind: OPRF.Blind?
    private var keys: RecoveryKeys?
    private(set) var account: AccountID?
    private var log: DeviceLog?
    private var epochKeys: [UInt64: SymmetricKey] = [:]
    private var conflicts = 0
    var access: FlowAccess { .anonymous }

    init(secret: Secret) {
        self.secret = secret
        if case .passphrase(let account, _) = secret { self.account = account }
    }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        stage = .lookup
        switch secret {
        case .words(let keys):
            self.keys = keys
            return .request(.fetchRecovery(.with { $0.recoveryKeyID = Data(keys.id.bytes) }))
        case .passphrase(let account, let normalized):
            var input = RecoveryPassphrase.oprfInput(account: account, passphrase: normalized)
            defer { SecretBytes.wipe(&input) }
            do { blind = try OPRF.blind(input, using: core.random) } catch { return .finish(.failure(.crypto(error))) }
            return .request(.recoveryEvaluate(.with {
                $0.accountID = Data(account.bytes)
                $0.blindedElement = Data(blind?.blindedElement.bytes ?? [])
            }))
        }
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do { return try step(reply, core: core) } catch { return .finish(.failure(error)) }
    }

    private mutating func step(_ reply: FlowReply, core: ClientCore) throws(ClientError) -> FlowStep {
        switch (stage, reply) {
        case (.lookup, .body(.recoveryBlob(let blob))):
            do { account = try AccountID(validating: blob.accountID, field: "account_id") } catch {
                throw .server(.unexpectedFrame("RecoveryBlob with a malformed account id"))
            }
            return try authenticate()
        case (.lookup, .body(.recoveryEvaluation(let evaluation))):
            keys = try derive(evaluation)
            return try authenticate()
        case (.lookup, .error(let error)):
            throw Self.lookupFailure(error, words: keys != nil)
        case (.authenticate, .body(.authResult)):
            guard let account else { throw .noAccount }
            stage = .log
            return .request(.fetchDeviceLog(.with { $0.accountID = Data(account.bytes) }))
        case (.authenticate, .error(let error))
        where error == .deviceNotActive || error == .authFailed || error == .unknownAccount:
            // The derived key is not the account's recovery key: a wrong passphrase (its
            // evaluation stays counted), words of another account, or a passphrase for an
            // account that has none or does not exist (the server's stand-in answered, §25).
            throw .wrongRecoverySecret
        case (.log, .body(.deviceLogEntries(let served))):
            guard let keys, let account else { throw .noAccount }
            let verified: DeviceLog
            do { verified = try DeviceLog(verifying: served.entries.map { w throws(ProtocolError) in try DeviceLogEntry(wire: Array(w)) }) }
            catch { throw .deviceLog(.invalid(error)) }
            guard verified.account == account else { throw .deviceLog(.invalid(.invalidDeviceLog("log of another account"))) }
            guard let recovery = verified.recoveryKey else { throw .noRecoveryKey }
            guard recovery.id == keys.id else { throw .wrongRecoverySecret }
            log = verified
            stage = .envelopes
            return .request(.fetchKeyEnvelopes(Cloak_V1_FetchKeyEnvelopes()))
        case (.envelopes, .body(.keyEnvelopes(let list))):
            return try addThisDevice(list, core: core)
        case (.append, .body(.done)):
            return try sealToThisDevice(core: core)
        case (.append, .error(.deviceLogConflict)) where conflicts < 3:
            // Another device appended first: read the log again and rebuild the entry on it.
            conflicts += 1
            guard let account else { throw .noAccount }
            stage = .log
            return .request(.fetchDeviceLog(.with { $0.accountID = Data(account.bytes) }))
        case (.seal, .body(.done)):
            guard let log else { throw .noAccount }
            try core.adopt(log: log, keys: epochKeys)
            try core.clearPending(.pendingRecovery)
            return .finish(.success(.completed))
        default:
            return LogAppend.fail(reply, "a reply to \(stage)")
        }
    }

    private mutating func authenticate() throws(ClientError) -> FlowStep {
        guard let keys else { throw .noAccount }
        stage = .authenticate
        return .authenticate(keys.id, keys.signing)
    }

    /// The passphrase's recovery keys from the server's evaluation (checked: a valid element,
    /// parameters at or above the floors; ADV-25).
    private mutating func derive(_ evaluation: Cloak_V1_RecoveryEvaluation) throws(ClientError) -> RecoveryKeys {
        guard let blind, let account else { throw .noAccount }
        defer { self.blind = nil }
        do throws(CryptoError) {
            let output = try blind.finalize(evaluatedElement: OPRF.Element(validating: Array(evaluation.evaluatedElement)))
            let enrollment = try RecoveryEnrollment(decoding: Array(evaluation.kdfParameters))
            guard enrollment.keyVersion == evaluation.keyVersion else { throw .malformedEncoding("key version") }
            return try RecoveryPassphrase.keys(oprfOutput: output, account: account, enrollment: enrollment)
        } catch { throw .crypto(error) }
    }

    /// Opens every epoch key sealed to the recovery key, then appends this device (signed by
    /// the recovery key) unless an interrupted run already did; the log and keys are kept first.
    private mutating func addThisDevice(_ list: Cloak_V1_KeyEnvelopes, core: ClientCore) throws(ClientError) -> FlowStep {
        guard let keys, var log else { throw .noAccount }
        let envelopes = list.envelopes.compactMap { try? KeyEnvelope(message: $0) }
        epochKeys = ClientCore.openAll(envelopes, log: log, recipient: keys.id, key: keys.agreement)
        guard epochKeys[log.currentEpoch] != nil else { throw .missingEpochKey(log.currentEpoch) }
        if log.isActive(core.me, atIndex: log.headIndex) {
            return try sealToThisDevice(core: core)
        }
        let entry = DeviceLogEntry.add(
            .addDevice, signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey,
            after: log, signer: keys.signing, createdAtMs: core.now())
        do { try log.append(entry) } catch { throw .server(error) }
        self.log = log
        try core.savePendingRecovery(PendingRecoveryState(log: log.entries.map(\.wire), keys: epochKeys))
        stage = .append
        return .request(.appendDeviceLog(.with { $0.entry = Data(entry.wire) }))
    }

    /// Every epoch key sealed to this device, sent by the recovery key.
    private mutating func sealToThisDevice(core: ClientCore) throws(ClientError) -> FlowStep {
        guard let keys, let account else { throw .noAccount }
        var envelopes: [KeyEnvelope] = []
        for (epoch, key) in epochKeys.sorted(by: { $0.key < $1.key }) {
            do {
                envelopes.append(try KeyEnvelope.seal(
                    key, epoch: epoch, account: account, recipient: core.me, recipientKey: core.identity.agreement.publicKey,
                    sender: keys.id, signer: keys.signing, random: core.random))
            } catch { throw .crypto(error) }
        }
        stage = .seal
        return .request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.message) }))
    }

    static func lookupFailure(_ error: ProtocolError, words: Bool) -> ClientError {
        switch error {
        case .notFound: words ? .wrongRecoverySecret : .noRecoveryKey
        case .recoveryLocked(let after): .recoveryLocked(retryAfterMs: after)
        case .recoveryUnavailable: .recoveryUnavailable
        default: .server(error)
        }
    }
}

/// Finishes a recovery a crash interrupted after this device may have been appended, without
/// the recovery secret: authenticate as this device (it is a member if the append landed), seal
/// the kept epoch keys to itself, keep the account. If the append never landed, the kept state
/// is forgotten and the recovery must run again (``ClientError/recoveryInterrupted``).
struct ResumeRecoveryFlow: AuthenticatingFlow {
    private enum Stage { case authenticate, log, seal }

    private var stage = Stage.authenticate
    private var pending: PendingRecoveryState?
    private var log: DeviceLog?
    private(set) var account: AccountID?
    var access: FlowAccess { .anonymous }

    init(pending: PendingRecoveryState) throws(ClientError) {
        self.pending = pending
        do { account = try DeviceLog(verifying: pending.log.map { w throws(ProtocolError) in try DeviceLogEntry(wire: w) }).account }
        catch { throw .storage("pending recovery record holds a log that does not verify") }
    }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        stage = .authenticate
        return .authenticate(core.me, core.identity.signing)
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do { return try step(reply, core: core) } catch { return .finish(.failure(error)) }
    }

    private mutating func step(_ reply: FlowReply, core: ClientCore) throws(ClientError) -> FlowStep {
        switch (stage, reply) {
        case (.authenticate, .body(.authResult)):
            guard let account else { throw .noAccount }
            stage = .log
            return .request(.fetchDeviceLog(.with { $0.accountID = Data(account.bytes) }))
        case (.authenticate, .error(let error)) where error == .deviceNotActive || error == .authFailed:
            try core.clearPending(.pendingRecovery)
            throw .recoveryInterrupted
        case (.log, .body(.deviceLogEntries(let served))):
            guard let pending, let account else { throw .noAccount }
            let (verified, _) = try ClientCore.verifyJoiningLog(served.entries.map(Array.init), subject: core.identity.signing.publicKey)
            let kept = pending.log.compactMap { try? DeviceLogEntry(wire: $0).hash }
            guard verified.account == account, kept.enumerated().allSatisfy({ verified.hash(atIndex: UInt64($0.offset)) == $0.element })
            else { throw .deviceLog(.invalid(.invalidDeviceLog("the served log does not continue the one recovery verified"))) }
            log = verified
            var envelopes: [KeyEnvelope] = []
            for (epoch, key) in pending.keys.sorted(by: { $0.key < $1.key }) {
                envelopes.append(try core.seal(key, epoch: epoch, account: account, to: core.me, core.identity.agreement.publicKey))
            }
            stage = .seal
            return .request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.message) }))
        case (.seal, .body(.done)):
            guard let log, let pending else { throw .noAccount }
            try core.adopt(log: log, keys: pending.keys)
            try core.clearPending(.pendingRecovery)
            return .finish(.success(.completed))
        default:
            return LogAppend.fail(reply, "a reply to \(stage)")
        }
    }
}
