@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
import SwiftProtobuf

/// Sets (or replaces) the account's recovery key (PROTOCOL.md §22): for a passphrase, one
/// oblivious evaluation by the server (an enrollment, not a guess) and Argon2id under a fresh
/// salt; then a `set_recovery` entry, every epoch key sealed to the recovery key, and the
/// recovery blob (how to derive the key again) stored with the account.
///
/// Replacing a recovery key starts a new key epoch (the entry advances it, like a removal): its
/// key is remembered durably before the entry is sent, then sealed to every active device and
/// the new recovery key, never to the old one, so an old secret opens nothing written after its
/// replacement. The engine refuses to replace a key unless asked to (``ClientError/recoveryAlreadySet``).
struct SetRecoveryFlow: LifecycleFlow {
    enum Secret {
        case words(RecoveryKeys)
        case passphrase(normalized: SecretBytes)
    }

    private enum Stage { case evaluate, append, envelopes, blob }

    let secret: Secret
    private var stage = Stage.append
    private var blind: OPRF.Blind?
    private var keysID: DeviceID?
    private var kdfParameters: [UInt8] = []
    private var append: LogAppend?
    var access: FlowAccess { .device }

    init(secret: Secret) { self.secret = secret }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        switch secret {
        case .words(let keys):
            return beginAppend(keys, parameters: RecoverySecret.wordsParameterMarker, core: core)
        case .passphrase(let normalized):
            guard let account = core.account else { return .finish(.failure(.noAccount)) }
            var input = RecoveryPassphrase.oprfInput(account: account, passphrase: normalized)
            defer { SecretBytes.wipe(&input) }
            do { blind = try OPRF.blind(input, using: core.random) } catch { return .finish(.failure(.crypto(error))) }
            stage = .evaluate
            return .request(.recoveryEvaluate(.with {
                $0.accountID = Data(account.bytes)
                $0.blindedElement = Data(blind?.blindedElement.bytes ?? [])
            }))
        }
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        switch stage {
        case .evaluate:
            guard case .body(.recoveryEvaluation(let evaluation)) = reply else {
                if case .error(let error) = reply { return .finish(.failure(RecoverFlow.lookupFailure(error, words: false))) }
                return LogAppend.fail(reply, "RecoveryEvaluation")
            }
            do {
                let (keys, enrollment) = try enroll(evaluation, core: core)
                return beginAppend(keys, parameters: enrollment.encoded, core: core)
            } catch { return .finish(.failure(error)) }
        case .append:
            guard var append else { return .finish(.failure(.noAccount)) }
            let progress = append.handle(reply, core: core, output: &output)
            self.append = append
            let entry: DeviceLogEntry
            switch progress {
            case .pending(let step): return step
            case .appended(let appended): entry = appended
            }
            let envelopes: [KeyEnvelope]
            do { envelopes = try core.commitAppended(entry, newEpochKey: append.key, output: &output) } catch {
                return .finish(.failure(error))
            }
            // A replacement's new epoch key went to the envelope queue (the sync pushes it).
            output.pushEnvelopes = true
            output.pushOutbox = true
            stage = .envelopes
            return .request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.message) }))
        case .envelopes:
            guard case .body(.done) = reply, let account = core.account, let keysID else { return LogAppend.fail(reply, "Done") }
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

    /// The recovery keys from the server's evaluation under its current key version, with a
    /// fresh salt and Cloak's default Argon2id cost.
    private mutating func enroll(_ evaluation: Cloak_V1_RecoveryEvaluation, core: ClientCore) throws(ClientError)
        -> (RecoveryKeys, RecoveryEnrollment)
    {
        guard let blind, let account = core.account else { throw .noAccount }
        defer { self.blind = nil }
        do {
            let output = try blind.finalize(evaluatedElement: OPRF.Element(validating: Array(evaluation.evaluatedElement)))
            let enrollment = RecoveryEnrollment(
                keyVersion: evaluation.keyVersion, argon2: .recommended(using: core.random))
            return (try RecoveryPassphrase.keys(oprfOutput: output, account: account, enrollment: enrollment), enrollment)
        } catch { throw .crypto(error) }
    }

    private mutating func beginAppend(_ keys: RecoveryKeys, parameters: [UInt8], core: ClientCore) -> FlowStep {
        keysID = keys.id
        kdfParameters = parameters
        var append = LogAppend { core throws(ClientError) in try core.prepareSetRecovery(keys) }
        stage = .append
        let step = append.start(core: core)
        self.append = append
        return step
    }
}
