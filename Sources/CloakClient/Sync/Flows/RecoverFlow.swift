import CloakCrypto
import CloakProtocol
import Foundation
import SwiftProtobuf

/// Restores the account on a fresh device from its recovery secret (PROTOCOL.md §22): fetch the
/// recovery blob, derive the recovery keys, check them against the verified device log,
/// authenticate as the recovery key, open every epoch key sealed to it, add this device (an
/// entry signed by the recovery key), seal the keys to this device, and keep the account.
struct RecoverFlow: AuthenticatingFlow {
    private enum Stage { case blob, log, authenticate, envelopes, append, seal }

    let lookup: Cloak_V1_FetchRecovery
    let derive: (Cloak_V1_RecoveryBlob) throws(ClientError) -> RecoveryKeys
    private var stage = Stage.blob
    private var keys: RecoveryKeys?
    private(set) var account: AccountID?
    private var log: DeviceLog?
    private var epochKeys: [UInt64: SymmetricKey] = [:]
    var access: FlowAccess { .anonymous }

    init(lookup: Cloak_V1_FetchRecovery, derive: @escaping (Cloak_V1_RecoveryBlob) throws(ClientError) -> RecoveryKeys) {
        self.lookup = lookup
        self.derive = derive
    }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        stage = .blob
        return .request(.fetchRecovery(lookup))
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do { return try step(reply, core: core) } catch { return .finish(.failure(error)) }
    }

    private mutating func step(_ reply: FlowReply, core: ClientCore) throws(ClientError) -> FlowStep {
        switch (stage, reply) {
        case (.blob, .error(.notFound)):
            throw .wrongRecoverySecret
        case (.blob, .body(.recoveryBlob(let blob))):
            keys = try derive(blob)
            let account: AccountID
            do { account = try AccountID(validating: blob.accountID, field: "account_id") } catch {
                throw .server(.unexpectedFrame("RecoveryBlob with a malformed account id"))
            }
            self.account = account
            stage = .log
            return .request(.fetchDeviceLog(.with { $0.accountID = Data(account.bytes) }))
        case (.log, .body(.deviceLogEntries(let served))):
            guard let keys, let account else { throw .noAccount }
            let log: DeviceLog
            do {
                log = try DeviceLog(verifying: served.entries.map { w throws(ProtocolError) in try DeviceLogEntry(wire: Array(w)) })
            } catch { throw .deviceLog(.invalid(error)) }
            guard log.account == account else { throw .deviceLog(.invalid(.invalidDeviceLog("log of another account"))) }
            guard let recovery = log.recoveryKey else { throw .noRecoveryKey }
            guard recovery.id == keys.id else { throw .wrongRecoverySecret }
            self.log = log
            stage = .authenticate
            return .authenticate(keys.id, keys.signing)
        case (.authenticate, .body(.authResult)):
            stage = .envelopes
            return .request(.fetchKeyEnvelopes(Cloak_V1_FetchKeyEnvelopes()))
        case (.envelopes, .body(.keyEnvelopes(let list))):
            guard let keys, let log else { throw .noAccount }
            let envelopes = list.envelopes.compactMap { try? KeyEnvelope(message: $0) }
            epochKeys = ClientCore.openAll(envelopes, log: log, recipient: keys.id, key: keys.agreement)
            guard epochKeys[log.currentEpoch] != nil else { throw .missingEpochKey(log.currentEpoch) }
            let entry = DeviceLogEntry.add(
                .addDevice, signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey,
                after: log, signer: keys.signing, createdAtMs: core.now())
            do { try self.log?.append(entry) } catch { throw .server(error) }
            stage = .append
            return .request(.appendDeviceLog(.with { $0.entry = Data(entry.wire) }))
        case (.append, .body(.done)):
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
        case (.seal, .body(.done)):
            guard let log else { throw .noAccount }
            try core.adopt(log: log, keys: epochKeys)
            return .finish(.success(.completed))
        default:
            return LogAppend.fail(reply, "a reply to \(stage)")
        }
    }
}
