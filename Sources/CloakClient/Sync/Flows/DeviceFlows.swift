@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
import SwiftProtobuf

/// Appends one device-log entry this device signs, re-reading the log and re-preparing the
/// entry when another device appended first (`DEVICE_LOG_CONFLICT`, PROTOCOL.md §18), at most
/// three times. The device flows below each start with one.
struct LogAppend {
    enum Progress { case appended(DeviceLogEntry), pending(FlowStep) }

    /// Prepares the entry on top of the log this device holds now (with the next epoch's key,
    /// for a removal).
    let prepare: (ClientCore) throws(ClientError) -> (DeviceLogEntry, SymmetricKey?)
    private(set) var entry: DeviceLogEntry?
    /// The new epoch's key that goes with ``entry`` (a removal).
    private(set) var key: SymmetricKey?
    private var attempts = 0
    private var fetching = false

    init(_ prepare: @escaping (ClientCore) throws(ClientError) -> (DeviceLogEntry, SymmetricKey?)) { self.prepare = prepare }

    mutating func start(core: ClientCore) -> FlowStep {
        attempts += 1
        do {
            let (entry, key) = try prepare(core)
            self.entry = entry
            self.key = key
            return .request(.appendDeviceLog(.with { $0.entry = Data(entry.wire) }))
        } catch { return .finish(.failure(error)) }
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> Progress {
        if fetching {
            fetching = false
            guard case .body(.deviceLogEntries(let entries)) = reply else { return .pending(Self.fail(reply, "DeviceLogEntries")) }
            do { output.merge(try core.receiveDeviceLog(entries.entries.map(Array.init))) } catch {
                return .pending(.finish(.failure(error)))
            }
            return .pending(start(core: core))
        }
        switch reply {
        case .body(.done):
            guard let entry else { return .pending(.finish(.failure(.notConnected))) }
            return .appended(entry)
        case .error(.deviceLogConflict) where attempts < 3:
            guard let account = core.account else { return .pending(.finish(.failure(.noAccount))) }
            fetching = true
            return .pending(.request(.fetchDeviceLog(.with {
                $0.accountID = Data(account.bytes)
                $0.fromIndex = 0
            })))
        default:
            return .pending(Self.fail(reply, "Done"))
        }
    }

    /// A reply that is not the one expected: the server's error, or a protocol violation.
    static func fail(_ reply: FlowReply, _ expected: String) -> FlowStep {
        if case .error(let error) = reply { return .finish(.failure(.server(error))) }
        return .finish(.failure(.server(.unexpectedFrame("expected \(expected)"))))
    }
}

/// Removes a device (a lost phone): a new key epoch starts that the removed device never
/// receives; its envelopes are queued durably and handed to the server.
struct RemoveDeviceFlow: LifecycleFlow {
    private var append: LogAppend
    private var queued: [Int64]?
    /// Catching up on the removed device's change sets after STALE_CUTOFFS.
    private var catchUp: CutoffCatchUp?
    private var catchUps = 0
    let device: DeviceID
    var access: FlowAccess { .device }

    init(device: DeviceID) {
        self.device = device
        append = LogAppend { core throws(ClientError) in
            let prepared = try core.prepareRemove(device)
            return (prepared.entry, prepared.key)
        }
    }

    /// Ends an assistant's access (PROTOCOL.md §29): revokes it (`removing` nil) or removes
    /// conversations from its scope. The same steps as a removal: cut-offs the server checks, a
    /// new epoch whose keys reach every device and each remaining assistant's scope.
    init(assistant: DeviceID, removing: [ConversationID]?, reason: AssistantEndReason) {
        device = assistant
        append = LogAppend { core throws(ClientError) in
            let prepared = try core.prepareEndAssistant(assistant, removing: removing, reason: reason)
            return (prepared.entry, prepared.key)
        }
    }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep { append.start(core: core) }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        if var catching = catchUp {
            // The removed device's change sets the server holds and this device did not: once
            // they are in, the removal is signed again with cut-offs that cover them.
            guard let step = catching.handle(reply, core: core, output: &output) else {
                catchUp = nil
                return append.start(core: core)
            }
            catchUp = catching
            return step
        }
        if case .error(.staleCutoffs) = reply, catchUps < 3 {
            catchUps += 1
            let catching = CutoffCatchUp(device: device)
            let step = catching.start()
            catchUp = catching
            return step
        }
        guard let queued else {
            let entry: DeviceLogEntry
            switch append.handle(reply, core: core, output: &output) {
            case .pending(let step): return step
            case .appended(let appended): entry = appended
            }
            do {
                _ = try core.commitAppended(entry, newEpochKey: append.key, output: &output)
                // Edits waiting for the new epoch can be sealed now.
                output.pushOutbox = true
                let envelopes = try core.envelopesToSend()
                guard !envelopes.isEmpty else { return .finish(.success(.completed)) }
                self.queued = envelopes.map(\.id)
                return .request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.envelope) }))
            } catch { return .finish(.failure(error)) }
        }
        guard case .body(.done) = reply else { return LogAppend.fail(reply, "Done") }
        do { try core.envelopesDelivered(queued) } catch { return .finish(.failure(error)) }
        return .finish(.success(.completed))
    }
}

/// Fetches every change set of one device that the server holds beyond this device's chains:
/// the server's heads (all pages), then each missing range, each admitted as a delivery.
struct CutoffCatchUp {
    let device: DeviceID
    private var heads: [Cloak_V1_ChainHead] = []
    private var ranges: [GapRequest] = []

    init(device: DeviceID) { self.device = device }

    func start() -> FlowStep { .request(.fetchHeads(Cloak_V1_FetchHeads())) }

    /// The next step, or nil when done.
    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep? {
        switch reply {
        case .body(.chainHeads(let page)):
            heads += page.heads
            if !page.complete, let last = page.heads.last {
                return .request(.fetchHeads(.with {
                    $0.afterConversationID = last.conversationID
                    $0.afterAuthor = last.device
                }))
            }
            for head in heads where head.device == Data(device.bytes) {
                guard let conversation = try? ConversationID(validating: head.conversationID, field: "conversation_id") else {
                    continue
                }
                let mine = core.ledger.chains[ChainKey(conversation: conversation, author: device)]?.seq ?? 0
                var from = mine + 1
                while from <= head.seq {
                    let to = min(head.seq, from + UInt64(core.configuration.limits.maxCatchUpBatch) - 1)
                    ranges.append(GapRequest(conversation: conversation, author: device, fromSeq: from, toSeq: to))
                    from = to + 1
                }
            }
            return next()
        case .body(.deliver(let deliver)):
            do { output.merge(try core.receive(deliver.items.map { (cursor: 0, wire: Array($0.changeSet)) })) } catch {
                return .finish(.failure(error))
            }
            return next()
        default:
            return LogAppend.fail(reply, "ChainHeads or Deliver")
        }
    }

    private mutating func next() -> FlowStep? {
        guard !ranges.isEmpty else { return nil }
        let range = ranges.removeFirst()
        return .request(.fetchChangeSets(.with {
            $0.conversationID = Data(range.conversation.bytes)
            $0.author = Data(range.author.bytes)
            $0.fromSeq = range.fromSeq
            $0.toSeq = range.toSeq
        }))
    }
}
