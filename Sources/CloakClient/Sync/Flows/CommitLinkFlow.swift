@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
import SwiftProtobuf

/// The existing device after its user compared the codes. On "no" it tells the new device and
/// commits nothing. On "yes" it waits for the new device's answer, and only when that is yes
/// too does it add the device (remembering durably that both said yes, so a crash cannot leave
/// the device added without keys), seal every epoch key to it and put the result
/// (PROTOCOL.md §21 steps 6–8; ADV-48).
struct CommitLinkFlow: LifecycleFlow {
    private enum Stage { case declined, answer, refresh, append, envelopes, result }

    let payload: PairingPayload
    let accepted: Bool
    let pollMillis: UInt64
    /// Continuing an acceptance a crash interrupted (both already said yes).
    let resuming: Bool
    private var stage = Stage.answer
    private var append: LogAppend
    private var entry: DeviceLogEntry?
    var access: FlowAccess { .device }
    var survivesReconnect: Bool { true }

    init(payload: PairingPayload, accepted: Bool, pollMillis: UInt64, resuming: Bool = false) {
        self.payload = payload
        self.accepted = accepted
        self.pollMillis = pollMillis
        self.resuming = resuming
        append = LogAppend { core throws(ClientError) in
            (try core.prepareAddDevice(signingKey: payload.signingKey, agreementKey: payload.agreementKey), nil)
        }
    }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        if !accepted {
            stage = .declined
            return putResult(accepted: false, core: core)
        }
        if resuming || stage != .answer {
            // Learn whether the add landed before the interruption: append only if it did not.
            guard let account = core.account else { return .finish(.failure(.noAccount)) }
            stage = .refresh
            return .request(.fetchDeviceLog(.with { $0.accountID = Data(account.bytes) }))
        }
        return pollAnswer()
    }

    mutating func resume(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        stage == .answer ? pollAnswer() : start(core: core, output: &output)
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do { return try step(reply, core: core, output: &output) } catch { return .finish(.failure(error)) }
    }

    private mutating func step(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) throws(ClientError) -> FlowStep {
        switch (stage, reply) {
        case (.declined, .body(.done)):
            return .finish(.success(.completed))
        case (.answer, .body(.mailboxContent(let content))):
            guard !content.payload.isEmpty else {
                guard core.now() < payload.expiresAtMs else { throw .pairingNotCompleted }
                return .wait(until: core.now() + pollMillis)
            }
            let answer: Cloak_V1_PairingAnswer
            do { answer = try payload.open(Cloak_V1_PairingAnswer.self, Array(content.payload), for: .answer) } catch {
                throw .pairing(error)
            }
            guard answer.accepted else { throw .linkDeclined }
            // Both said yes: from here on the flow finishes even after a crash.
            try core.savePendingAcceptance(PendingAcceptanceState(payload: payload))
            return try beginAppend(core: core, output: &output)
        case (.refresh, .body(.deviceLogEntries(let entries))):
            output.merge(try core.receiveDeviceLog(entries.entries.map(Array.init)))
            if core.addEntry(of: payload.signingKey) == nil, core.now() >= payload.expiresAtMs {
                // Never added, and the new device has given up: nothing to finish.
                try core.clearPending(.pendingAcceptance)
                throw .pairingNotCompleted
            }
            return try beginAppend(core: core, output: &output)
        case (.append, _):
            switch append.handle(reply, core: core, output: &output) {
            case .appended(let appended):
                return try seal(appended, core: core, output: &output)
            case .pending(.finish(.failure(.pairingReused))):
                // Another attempt's add landed meanwhile (a lost reply): seal to it.
                guard let existing = core.addEntry(of: payload.signingKey) else { throw .pairingReused }
                return try seal(existing, core: core, output: &output)
            case .pending(let step):
                return step
            }
        case (.envelopes, .body(.done)):
            stage = .result
            return putResult(accepted: true, core: core)
        case (.result, .body(.done)):
            try core.clearPending(.pendingAcceptance)
            return .finish(.success(.completed))
        default:
            return LogAppend.fail(reply, "a reply to \(stage)")
        }
    }

    private mutating func pollAnswer() -> FlowStep {
        stage = .answer
        return .request(.mailboxTake(.with { $0.mailboxID = Data(payload.mailboxID(.answer)) }))
    }

    private mutating func beginAppend(core: ClientCore, output: inout CoreOutput) throws(ClientError) -> FlowStep {
        if let existing = core.addEntry(of: payload.signingKey) { return try seal(existing, core: core, output: &output) }
        stage = .append
        return append.start(core: core)
    }

    /// The add entry is in the log: seal every epoch key to the new device and store them.
    private mutating func seal(_ added: DeviceLogEntry, core: ClientCore, output: inout CoreOutput) throws(ClientError)
        -> FlowStep
    {
        _ = try core.commitAppended(added, output: &output)
        entry = added
        let envelopes = try core.envelopesForAllEpochs(to: payload.deviceID, payload.agreementKey)
        stage = .envelopes
        return .request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.message) }))
    }

    private func putResult(accepted: Bool, core: ClientCore) -> FlowStep {
        var result = Cloak_V1_PairingResult()
        result.accepted = accepted
        if accepted, let entry { result.addEntryHash = Data(entry.hash.bytes) }
        return .request(.mailboxPut(.with {
            $0.mailboxID = Data(payload.mailboxID(.result))
            $0.payload = Data(payload.seal(FrameCodec.serialize(result), for: .result, random: core.random))
            $0.ttlSeconds = JoinLinkFlow.ttl(payload, now: core.now())
        }))
    }
}

extension ClientCore {
    /// The entry of this device's verified log that added a device with `signingKey`, if any.
    func addEntry(of signingKey: Ed25519PublicKey) -> DeviceLogEntry? {
        guard let log, let member = log.members[DeviceID(signingKey: signingKey)], !member.isRecoveryKey else { return nil }
        return log.entries[Int(member.addedAt)]
    }
}
