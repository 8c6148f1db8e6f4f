import CloakCrypto
import CloakProtocol
import Foundation
import Logging
import SwiftProtobuf

/// Creates a new account with this device as its only member: `Register(genesis)` (a retried
/// register of our own genesis answers ACCOUNT_EXISTS and counts as done), authenticate as
/// this device, store the epoch-1 envelope on the server, then keep the account.
struct CreateAccountFlow: AuthenticatingFlow {
    private enum Stage { case register, authenticate, envelope }

    private var prepared: PreparedAccount?
    private var stage = Stage.register
    var access: FlowAccess { .anonymous }
    var account: AccountID? { prepared?.log.account }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do { prepared = try core.prepareAccount() } catch { return .finish(.failure(error)) }
        guard let prepared else { return .finish(.failure(.noAccount)) }
        stage = .register
        return .request(.register(.with { $0.genesis = Data(prepared.genesis.wire) }))
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard let prepared else { return .finish(.failure(.noAccount)) }
        switch (stage, reply) {
        case (.register, .body(.done)), (.register, .error(.accountExists)):
            stage = .authenticate
            return .authenticate(core.me, core.identity.signing)
        case (.authenticate, .body(.authResult)):
            stage = .envelope
            return .request(.putKeyEnvelopes(.with { $0.envelopes = [prepared.envelope.message] }))
        case (.envelope, .body(.done)):
            do { try core.adopt(log: prepared.log, keys: [1: prepared.key]) } catch { return .finish(.failure(error)) }
            core.logger.info("account created", metadata: ["account": "\(prepared.log.account)"])
            return .finish(.success(.completed))
        default:
            return LogAppend.fail(reply, "a reply to \(stage)")
        }
    }
}

/// A new device waits for an existing device to accept its invitation: it polls the pairing
/// mailbox (anonymously) until the bundle is there, then verifies it and computes the short
/// authentication string. Nothing is trusted until the app confirms (``ClientCore/join(log:envelopes:)``).
struct AwaitLinkFlow: LifecycleFlow {
    let payload: PairingPayload
    let pollMillis: UInt64
    var access: FlowAccess { .anonymous }
    var survivesReconnect: Bool { true }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard core.now() < payload.expiresAtMs else { return .finish(.failure(.pairingNotCompleted)) }
        return .request(.mailboxTake(.with { $0.mailboxID = Data(payload.mailboxID) }))
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard case .body(.mailboxContent(let content)) = reply else { return LogAppend.fail(reply, "MailboxContent") }
        guard !content.payload.isEmpty else { return .wait(until: core.now() + pollMillis) }
        do { return .finish(.success(.pendingLink(try open(Array(content.payload), core: core)))) } catch {
            return .finish(.failure(error))
        }
    }

    private func open(_ sealed: [UInt8], core: ClientCore) throws(ClientError) -> PendingLink {
        let bundle: Cloak_V1_PairingBundle
        do { bundle = try payload.openBundle(sealed) } catch { throw .pairing(error) }
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
}

/// Sets a recovery key: a `set_recovery` entry, every epoch key sealed to the recovery key,
/// and the recovery blob (how to derive the key again) stored with the account.
struct SetRecoveryFlow: LifecycleFlow {
    private enum Stage { case append, envelopes, blob }

    let keysID: DeviceID
    let kdfParameters: [UInt8]
    private var append: LogAppend
    private var stage = Stage.append
    var access: FlowAccess { .device }

    init(keys: RecoveryKeys, kdfParameters: [UInt8]) {
        keysID = keys.id
        self.kdfParameters = kdfParameters
        append = LogAppend { core throws(ClientError) in (try core.prepareSetRecovery(keys), nil) }
    }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep { append.start(core: core) }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        switch stage {
        case .append:
            let entry: DeviceLogEntry
            switch append.handle(reply, core: core, output: &output) {
            case .pending(let step): return step
            case .appended(let appended): entry = appended
            }
            let envelopes: [KeyEnvelope]
            do { envelopes = try core.commitAppended(entry) } catch { return .finish(.failure(error)) }
            stage = .envelopes
            return .request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.message) }))
        case .envelopes:
            guard case .body(.done) = reply, let account = core.account else { return LogAppend.fail(reply, "Done") }
            var blob = Cloak_V1_RecoveryBlob()
            blob.accountID = Data(account.bytes)
            blob.recoveryKeyID = Data(keysID.bytes)
            blob.kdfParameters = Data(kdfParameters)
            stage = .blob
            return .request(.putRecovery(.with { $0.blob = blob }))
        case .blob:
            guard case .body(.done) = reply else { return LogAppend.fail(reply, "Done") }
            return .finish(.success(.completed))
        }
    }
}
