@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
import SwiftProtobuf

// Linking (PROTOCOL.md §21), new device N and existing device E, over three pairing mailboxes:
//
//   E: OfferLinkFlow     puts the offer (the log; nothing committed), shows the code
//   N: AwaitLinkFlow     takes and verifies the offer, shows the code
//   N: JoinLinkFlow      answers (yes/no); on yes waits for the result, then authenticates as
//                        itself, fetches and checks the log and its keys, joins
//   E: CommitLinkFlow    on its user's yes, waits for N's answer; only when both said yes does
//                        it add N, seal every epoch key to N and put the result
//
// A "no" on either side adds nothing, and N can start again with a new invitation (ADV-48).

/// The new device polls the offer mailbox until the existing device's offer is there, verifies
/// the offered log from genesis and computes the code. Nothing is trusted yet.
struct AwaitLinkFlow: LifecycleFlow {
    let payload: PairingPayload
    let pollMillis: UInt64
    var access: FlowAccess { .anonymous }
    var survivesReconnect: Bool { true }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do {
            // Taken already (MailboxTake is single use): resume from what was kept.
            if let pending = try core.pendingLink(), pending.payload == payload, pending.stage != .invited {
                return .finish(.success(.pendingLink(try PendingLink(payload: payload, offeredLog: pending.offeredLog))))
            }
        } catch { return .finish(.failure(error)) }
        guard core.now() < payload.expiresAtMs else { return .finish(.failure(.pairingNotCompleted)) }
        return .request(.mailboxTake(.with { $0.mailboxID = Data(payload.mailboxID(.offer)) }))
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard case .body(.mailboxContent(let content)) = reply else { return LogAppend.fail(reply, "MailboxContent") }
        guard !content.payload.isEmpty else { return .wait(until: core.now() + pollMillis) }
        do throws(ClientError) {
            let offer: Cloak_V1_PairingOffer
            do { offer = try payload.open(Cloak_V1_PairingOffer.self, Array(content.payload), for: .offer) } catch {
                throw .pairing(error)
            }
            let wires = offer.deviceLog.map(Array.init)
            let link = try PendingLink(payload: payload, offeredLog: wires)
            guard (try? AccountID(validating: offer.accountID, field: "account_id")) == link.accountID else {
                throw .pairing(.bundleRejected)
            }
            try core.savePendingLink(PendingLinkState(payload: payload, stage: .offered, offeredLog: wires))
            return .finish(.success(.pendingLink(link)))
        } catch { return .finish(.failure(error)) }
    }
}

/// The new device's answer and, after a yes, its joining: wait for the existing device's
/// result, authenticate as itself (it is a member now), fetch the log and check it extends what
/// was compared and adds exactly this device, open its envelopes, keep the account.
struct JoinLinkFlow: AuthenticatingFlow {
    private enum Stage { case answer, result, authenticate, log, envelopes }

    let payload: PairingPayload
    let accepted: Bool
    let pollMillis: UInt64
    private var stage = Stage.answer
    private var offeredLog: DeviceLog?
    private var addEntryHash: EntryHash?
    private var log: DeviceLog?
    /// Resuming after a crash: whether this device already tried to authenticate (the result
    /// may have been taken before the crash; a member can authenticate without it).
    private var triedAuthentication = false
    var access: FlowAccess { .anonymous }
    var survivesReconnect: Bool { true }
    var account: AccountID? { offeredLog?.account }

    init(payload: PairingPayload, accepted: Bool, pollMillis: UInt64) {
        self.payload = payload
        self.accepted = accepted
        self.pollMillis = pollMillis
    }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do throws(ClientError) {
            guard let pending = try core.pendingLink(), pending.payload == payload, pending.stage != .invited else {
                throw .pairingNotCompleted
            }
            offeredLog = try PendingLink(payload: payload, offeredLog: pending.offeredLog).log
            if pending.stage == .answered, accepted, !triedAuthentication {
                triedAuthentication = true
                stage = .authenticate
                return .authenticate(core.me, core.identity.signing)
            }
            if accepted, pending.stage != .answered {
                try core.savePendingLink(PendingLinkState(payload: payload, stage: .answered, offeredLog: pending.offeredLog))
            }
        } catch { return .finish(.failure(error)) }
        stage = .answer
        var answer = Cloak_V1_PairingAnswer()
        answer.accepted = accepted
        return .request(.mailboxPut(.with {
            $0.mailboxID = Data(payload.mailboxID(.answer))
            $0.payload = Data(payload.seal(FrameCodec.serialize(answer), for: .answer, random: core.random))
            $0.ttlSeconds = Self.ttl(payload, now: core.now())
        }))
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do { return try step(reply, core: core) } catch { return .finish(.failure(error)) }
    }

    mutating func resume(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard stage == .result else { return start(core: core, output: &output) }
        return pollResult(core: core)
    }

    private mutating func step(_ reply: FlowReply, core: ClientCore) throws(ClientError) -> FlowStep {
        switch (stage, reply) {
        case (.answer, .body(.done)):
            guard accepted else {
                try core.clearPending(.pendingLink)
                return .finish(.success(.completed))
            }
            return pollResult(core: core)
        case (.result, .body(.mailboxContent(let content))):
            guard !content.payload.isEmpty else {
                guard core.now() < payload.expiresAtMs else { throw .pairingNotCompleted }
                return .wait(until: core.now() + pollMillis)
            }
            let result: Cloak_V1_PairingResult
            do { result = try payload.open(Cloak_V1_PairingResult.self, Array(content.payload), for: .result) } catch {
                throw .pairing(error)
            }
            guard result.accepted else {
                try core.clearPending(.pendingLink)
                throw .linkDeclined
            }
            addEntryHash = try? EntryHash(validating: result.addEntryHash, field: "add_entry_hash")
            stage = .authenticate
            return .authenticate(core.me, core.identity.signing)
        case (.authenticate, .body(.authResult)):
            guard let account else { throw .noAccount }
            stage = .log
            return .request(.fetchDeviceLog(.with { $0.accountID = Data(account.bytes) }))
        case (.authenticate, .error(let error)) where error == .deviceNotActive || error == .authFailed:
            // Not added yet (a resumed flow tries before polling): the server closes this
            // connection; the next one polls the result mailbox.
            stage = .result
            return .wait(until: core.now() + pollMillis)
        case (.log, .body(.deviceLogEntries(let served))):
            log = try verifiedJoin(served.entries.map(Array.init), core: core)
            stage = .envelopes
            return .request(.fetchKeyEnvelopes(Cloak_V1_FetchKeyEnvelopes()))
        case (.envelopes, .body(.keyEnvelopes(let list))):
            guard let log else { throw .noAccount }
            try core.join(log: log, envelopes: list.envelopes.compactMap { try? KeyEnvelope(message: $0) })
            try core.clearPending(.pendingLink)
            return .finish(.success(.completed))
        default:
            return LogAppend.fail(reply, "a reply to \(stage)")
        }
    }

    private mutating func pollResult(core: ClientCore) -> FlowStep {
        stage = .result
        return .request(.mailboxTake(.with { $0.mailboxID = Data(payload.mailboxID(.result)) }))
    }

    /// The served log: verified from genesis, the offered log its prefix (what the codes
    /// compared), and an entry adding exactly this device's keys (the one the result named).
    private func verifiedJoin(_ wires: [[UInt8]], core: ClientCore) throws(ClientError) -> DeviceLog {
        guard let offered = offeredLog else { throw .noAccount }
        let (log, entry) = try ClientCore.verifyJoiningLog(wires, subject: core.identity.signing.publicKey)
        guard log.account == offered.account, log.hash(atIndex: offered.headIndex) == offered.head,
            entry.subjectAgreementKey == core.identity.agreement.publicKey, addEntryHash.map({ $0 == entry.hash }) ?? true
        else { throw .deviceLog(.invalid(.invalidDeviceLog("the log does not continue the one the codes compared"))) }
        return log
    }

    static func ttl(_ payload: PairingPayload, now: UInt64) -> UInt32 {
        UInt32(max(1, (payload.expiresAtMs - min(payload.expiresAtMs, now)) / 1000))
    }
}

/// The existing device offers the account to the invited device: its log, sealed into the
/// offer mailbox. Nothing is committed; the code to compare comes back.
struct OfferLinkFlow: LifecycleFlow {
    let payload: PairingPayload
    private var offered: DeviceLog?
    var access: FlowAccess { .device }

    init(payload: PairingPayload) { self.payload = payload }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard let log = core.log else { return .finish(.failure(.noAccount)) }
        guard log.members[payload.deviceID] == nil else { return .finish(.failure(.pairingReused)) }
        offered = log
        var offer = Cloak_V1_PairingOffer()
        offer.accountID = Data(log.account.bytes)
        offer.deviceLog = log.entries.map { Data($0.wire) }
        offer.acceptor = Data(core.me.bytes)
        return .request(.mailboxPut(.with {
            $0.mailboxID = Data(payload.mailboxID(.offer))
            $0.payload = Data(payload.seal(FrameCodec.serialize(offer), for: .offer, random: core.random))
            $0.ttlSeconds = JoinLinkFlow.ttl(payload, now: core.now())
        }))
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard case .body(.done) = reply, let offered else { return LogAppend.fail(reply, "Done") }
        return .finish(.success(.linkOffer(LinkOffer(
            payload: payload,
            shortAuthenticationString: payload.shortAuthenticationString(account: offered.account, offeredHead: offered.head)))))
    }
}
