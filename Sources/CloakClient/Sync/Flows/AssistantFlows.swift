import CloakCrypto
import CloakProtocol
import Foundation
import SwiftProtobuf

/// A device grants an assistant access (PROTOCOL.md §29): appends the `grant_assistant` entry,
/// then stores the granted conversations' keys (every epoch this device holds) sealed to the
/// assistant, a bounded batch per request.
struct GrantAssistantFlow: LifecycleFlow {
    private enum Stage { case append, envelopes }

    let invitation: AssistantInvitation
    let conversations: [ConversationID]
    private var append: LogAppend
    private var stage = Stage.append
    private var batches: [[Cloak_V1_KeyEnvelope]] = []
    var access: FlowAccess { .device }

    /// Envelopes per PutKeyEnvelopes (about 330 bytes each: far below the frame limit).
    static let batchSize = 512

    /// `envelopes` split into PutKeyEnvelopes requests of at most ``batchSize``, in order.
    static func batches(_ envelopes: [Cloak_V1_KeyEnvelope]) -> [[Cloak_V1_KeyEnvelope]] {
        stride(from: 0, to: envelopes.count, by: batchSize).map { Array(envelopes[$0..<min($0 + batchSize, envelopes.count)]) }
    }

    init(invitation: AssistantInvitation, conversations: [ConversationID], expiresAtMs: UInt64) {
        self.invitation = invitation
        self.conversations = conversations
        append = LogAppend { core throws(ClientError) in
            (try core.prepareGrant(invitation, conversations: conversations, expiresAtMs: expiresAtMs), nil)
        }
    }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        // Before the entry leaves: if the envelopes never follow it (a lost connection, a
        // crash), the next connection's heads scan seals them (``SyncMachine``).
        do { try core.markGrantUnsealed(invitation.id, true) } catch { return .finish(.failure(error)) }
        return append.start(core: core)
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        switch stage {
        case .append:
            let entry: DeviceLogEntry
            switch append.handle(reply, core: core, output: &output) {
            case .pending(let step): return step
            case .appended(let appended): entry = appended
            }
            do {
                _ = try core.commitAppended(entry, output: &output)
                let envelopes = try core.conversationKeyEnvelopes(
                    to: invitation.id, invitation.agreementKey, conversations: conversations)
                batches = Self.batches(envelopes.map(\.message))
            } catch { return .finish(.failure(error)) }
            stage = .envelopes
            output.changed.formUnion(conversations)
            return next(core: core)
        case .envelopes:
            guard case .body(.done) = reply else { return LogAppend.fail(reply, "Done") }
            return next(core: core)
        }
    }

    private mutating func next(core: ClientCore) -> FlowStep {
        guard !batches.isEmpty else {
            do { try core.markGrantUnsealed(invitation.id, false) } catch { return .finish(.failure(error)) }
            return .finish(.success(.completed))
        }
        let batch = batches.removeFirst()
        return .request(.putKeyEnvelopes(.with { $0.envelopes = batch }))
    }
}

/// An assistant's client joins the account that granted it (PROTOCOL.md §29): fetches the
/// device log (before authenticating), verifies it from genesis and finds its own grant, signs
/// in as itself, fetches the conversation keys sealed to it and keeps the account. Nothing is
/// believed that the verified log does not say.
struct JoinAssistantFlow: AuthenticatingFlow {
    private enum Stage { case log, authenticate, envelopes }

    let account: AccountID?
    private var stage = Stage.log
    private var log: DeviceLog?
    var access: FlowAccess { .anonymous }

    init(account: AccountID) { self.account = account }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        stage = .log
        guard let account else { return .finish(.failure(.noAccount)) }
        return .fetchLogAsListed(account)
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do { return try step(reply, core: core) } catch { return .finish(.failure(error)) }
    }

    private mutating func step(_ reply: FlowReply, core: ClientCore) throws(ClientError) -> FlowStep {
        switch (stage, reply) {
        case (.log, .body(.deviceLogEntries(let served))):
            let log: DeviceLog
            do {
                log = try DeviceLog(verifying: served.entries.map { w throws(ProtocolError) in try DeviceLogEntry(wire: Array(w)) })
            } catch { throw .deviceLog(.invalid(error)) }
            guard log.account == account else { throw .deviceLog(.invalid(.invalidDeviceLog("log of another account"))) }
            guard let grant = log.assistants[core.me], grant.endedAt == nil,
                grant.agreementKey == core.identity.agreement.publicKey
            else { throw .assistantNotGranted }
            guard core.now() < grant.current.expiresAtMs else { throw .notPermitted("this assistant's grant has expired") }
            self.log = log
            stage = .authenticate
            return .authenticate(core.me, core.identity.signing)
        case (.authenticate, .body(.authResult)):
            stage = .envelopes
            return .request(.fetchKeyEnvelopes(Cloak_V1_FetchKeyEnvelopes()))
        case (.envelopes, .body(.keyEnvelopes(let list))):
            guard let log else { throw .noAccount }
            let envelopes = list.envelopes.compactMap { try? ConversationKeyEnvelope(message: $0) }
            try core.joinAsAssistant(log: log, envelopes: envelopes)
            return .finish(.success(.completed))
        case (.log, .error(.unknownAccount)):
            throw .assistantNotGranted
        default:
            return LogAppend.fail(reply, "a reply to \(stage)")
        }
    }
}
