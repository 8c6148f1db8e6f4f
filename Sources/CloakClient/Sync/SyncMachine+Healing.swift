import CloakCrypto
import CloakProtocol
import Foundation
import SwiftProtobuf

/// What the sync machine does to keep the whole promise against the server (PROTOCOL.md "What
/// a client checks, and when"): notice that the server forgot what it had acknowledged or
/// delivered (ADV-44), compare the server's chain heads with this device's after every
/// catch-up, fetch what the server holds and this device lacks, re-upload what this device
/// holds and the server lacks, and report what stays missing (ADV-45).
struct Healing {
    /// A rollback was detected on this connection: heal once caught up.
    var rollback = false
    /// The server's head cursor and device-log length, from AuthResult.
    var serverHead: UInt64 = 0
    var serverLogLength: UInt64 = 0
    /// The heads scan of this connection: its request, what this device held when it asked,
    /// and the heads gathered so far.
    var scan: (id: UInt64, basis: HeadsBasis, heads: [ServerHead])?
    var scanned = false
    /// A delivered item was rejected: scan heads again once the current scan (if any) ends,
    /// at most once per ``rescanEveryMillis`` (a hostile server damaging every copy costs it
    /// one heads scan per period, and the data is asked for until an honest copy comes).
    var rescanWanted = false
    var rescanAt: UInt64 = 0
    static let rescanEveryMillis: UInt64 = 5_000
    /// Rejections that may have cost a change set (its copy was damaged or forged).
    static let damageKinds: Set<SecurityEvent.Kind> = [
        .malformedRecord, .badSignature, .decryptionFailed, .undecodableOperations, .unknownAuthor, .wrongAccount,
    ]
    /// Change sets to re-upload (restore pushes), and the one in flight.
    var restoreQueue: [ChangeSet] = []
    var restoreInFlight: (id: UInt64, hashes: [ChangeSetHash])?
    /// Device-log entries to re-append, and the request in flight.
    var logQueue: [DeviceLogEntry] = []
    var logInFlight: UInt64?
    /// Re-sealed envelopes to send (one recipient per request, so that a recipient the server
    /// does not know yet fails alone), and the request in flight with its envelopes.
    var envelopeQueue: [[Cloak_V1_KeyEnvelope]] = []
    var envelopesInFlight: (id: UInt64, batch: [Cloak_V1_KeyEnvelope])?
    /// Re-sealed envelopes the server refused, and the served log's length then: the server
    /// refuses an envelope for a member, an epoch or a scope its log does not have yet, and the
    /// whole request with it (INVALID_FIELD), while the lost entries are still on their way back
    /// from another member. Sent again once a longer log is served; not part of ``busy``, so
    /// pushes go on meanwhile.
    var envelopesAwaitingLog: [[Cloak_V1_KeyEnvelope]] = []
    var envelopesRefusedAtLog: UInt64 = 0
    /// This connection asked for this device's envelopes once after its heads scan, to notice
    /// one the server lost (``ClientCore/lostOwnEnvelope(in:)``).
    var envelopesChecked = false
    /// Assistants whose unfinished grant's envelopes this connection queued: forgotten as
    /// unsealed once the queue is sent (``ClientCore/markGrantUnsealed(_:_:)``).
    var grantsSealing: [DeviceID] = []

    var busy: Bool {
        !restoreQueue.isEmpty || restoreInFlight != nil || !logQueue.isEmpty || logInFlight != nil
            || !envelopeQueue.isEmpty || envelopesInFlight != nil
    }
}

extension SyncMachine {
    /// AuthResult: a head below this device's cursor, or a shorter device log, means the server
    /// forgot what it had delivered.
    mutating func checkAuthResult(_ result: Cloak_V1_AuthResult, core: ClientCore, now: UInt64) -> [SyncEffect] {
        healing.serverHead = result.headCursor
        healing.serverLogLength = result.deviceLogLength
        // A rollback incident outlives the process that opened it (it is stored): a device that
        // restarted mid-heal heals again on this connection, and closes it when done.
        if core.incidents[Incident(kind: .serverRollback, detail: "", openedAt: 0).id] != nil { healing.rollback = true }
        let cursor = (try? core.store.read { tx in try Ledger.cursor(tx) }) ?? 0
        let logLength = UInt64(core.log?.entries.count ?? 0)
        if result.deviceLogLength < logLength {
            healing.logQueue = core.logEntries(from: Int(result.deviceLogLength))
        }
        guard result.headCursor < cursor || result.deviceLogLength < logLength else { return [] }
        return rollbackDetected(
            "the server's head is cursor \(result.headCursor) with \(result.deviceLogLength) device-log entries; "
                + "this device had reached cursor \(cursor) and holds \(logLength) entries",
            core: core, now: now)
    }

    /// Opens the rollback incident, forgets the cursor (a server that lost or reused cursors
    /// cannot be followed from it) and heals once caught up.
    mutating func rollbackDetected(_ detail: String, core: ClientCore, now: UInt64) -> [SyncEffect] {
        healing.rollback = true
        var output = CoreOutput()
        do {
            try core.open(Incident(
                kind: .serverRollback,
                detail: "the server forgot what it had acknowledged or delivered: \(detail); this device re-uploads what "
                    + "it holds", openedAt: now), &output)
            try core.store.write { tx in try Ledger.resetCursor(tx) }
        } catch { return connectionLost(now: now, core: core) }
        lastAckedCursor = 0
        return [.surface(output)]
    }

    /// Another heads scan after a rejected delivery (at most one per period).
    mutating func rescanHeads(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard healing.scan == nil, healing.scanned, now >= healing.rescanAt else { return [] }
        healing.rescanWanted = false
        healing.rescanAt = now + Healing.rescanEveryMillis
        healing.scanned = false
        return startHeadsScan(core: core, now: now)
    }

    /// After catch-up: one heads scan per connection. An assistant makes none: the server
    /// answers FetchHeads with its whole account, which it may not see (PROTOCOL.md §29). After
    /// a rollback it gives back its own chains of its scope instead, with restore pushes (the
    /// server answers duplicates for what it kept): one it has nothing new to write in was lost
    /// for good, and its replies with it (seed 34).
    mutating func startHeadsScan(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard !core.isAssistant else {
            if healing.rollback, let scope = core.log?.assistants[core.me]?.current.scope {
                let chains = core.ledger.chains.keys.filter { $0.author == core.me && scope.contains($0.conversation) }
                queueOwnChains(Set(chains), core: core)
            }
            healing.scanned = true
            return []
        }
        guard healing.scan == nil, !healing.scanned else { return [] }
        guard let basis = try? core.headsBasis() else { return connectionLost(now: now, core: core) }
        return requestHeads(after: nil, basis: basis, collected: [], now: now)
    }

    private mutating func requestHeads(after: ServerHead?, basis: HeadsBasis, collected: [ServerHead], now: UInt64)
        -> [SyncEffect]
    {
        var fetch = Cloak_V1_FetchHeads()
        if let after {
            fetch.afterConversationID = Data(after.chain.conversation.bytes)
            fetch.afterAuthor = Data(after.chain.author.bytes)
        }
        let (id, effect) = send(.fetchHeads(fetch), kind: .heads, now: now)
        healing.scan = (id, basis, collected)
        return [effect]
    }

    /// A page of the server's heads; the last one compares them with this device's chains.
    mutating func headsReceived(_ page: Cloak_V1_ChainHeads, core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard let scan = healing.scan else { return [] }
        var heads = scan.heads
        for head in page.heads {
            guard let conversation = try? ConversationID(validating: head.conversationID, field: "conversation_id"),
                let device = try? DeviceID(validating: head.device, field: "device"),
                let hash = try? ChangeSetHash(validating: head.hash, field: "hash")
            else { return violation("malformed ChainHeads", core: core, now: now) }
            heads.append(ServerHead(chain: ChainKey(conversation: conversation, author: device), seq: head.seq, hash: hash))
        }
        if !page.complete, let last = heads.last {
            return requestHeads(after: last, basis: scan.basis, collected: heads, now: now)
        }
        healing.scan = nil
        healing.scanned = true
        let again = healing.rescanWanted ? rescanHeads(core: core, now: now) : []
        var output = CoreOutput()
        let comparison: HeadsComparison
        do { comparison = try core.compareHeads(heads, basis: scan.basis, &output) } catch {
            return connectionLost(now: now, core: core)
        }
        output.gaps += comparison.behind
        var effects = follow(output, core: core, now: now)
        if comparison.lostOwn > 0, !healing.rollback {
            effects += rollbackDetected("it lacks \(comparison.lostOwn) change sets it had acknowledged", core: core, now: now)
        }
        healing.restoreQueue += comparison.ahead
        if healing.rollback || !comparison.ahead.isEmpty { queueResealedEnvelopes(core: core) }
        // Not while a flow runs: a grant under way sends its own envelopes and then forgets.
        if flows.current == nil { queueUnsealedGrants(core: core) }
        if !healing.envelopesChecked {
            healing.envelopesChecked = true
            effects += fetchEnvelopes(now: now)
        }
        return effects + continueHealing(core: core, now: now) + again
    }

    /// Every epoch key this device holds, sealed again to every member and the recovery key, and
    /// the active assistants' conversation keys: what a rolled-back server may have lost (it
    /// keeps the first copy it has of each). One batch per recipient (a refusal of one, such as
    /// an assistant the server already counts as expired, costs no other its keys), bounded.
    private mutating func queueResealedEnvelopes(core: ClientCore) {
        let envelopes = (try? core.resealedEnvelopes()) ?? []
        let byRecipient = Dictionary(grouping: envelopes, by: \.recipient).sorted { $0.key < $1.key }
        healing.envelopeQueue = byRecipient.flatMap { _, sealed in GrantAssistantFlow.batches(sealed.map(\.envelope)) }
    }

    /// Grants this device began whose envelopes may never have been stored (the connection was
    /// lost or the process stopped between the entry and them, §29): sealed again, one batch
    /// per request, after the heads scan like a healing re-seal.
    private mutating func queueUnsealedGrants(core: ClientCore) {
        guard let unsealed = try? core.unsealedGrantEnvelopes(), !unsealed.isEmpty else { return }
        healing.grantsSealing = unsealed.map(\.assistant)
        for (_, sealed) in unsealed { healing.envelopeQueue += GrantAssistantFlow.batches(sealed) }
    }

    /// A served log longer than when the server refused re-sealed envelopes: they go again.
    mutating func releaseEnvelopesAwaitingLog(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard !healing.envelopesAwaitingLog.isEmpty, healing.serverLogLength > healing.envelopesRefusedAtLog else { return [] }
        healing.envelopeQueue += healing.envelopesAwaitingLog
        healing.envelopesAwaitingLog = []
        return continueHealing(core: core, now: now)
    }

    /// A rollback found after this connection's heads scan (a lost key envelope): re-seal now.
    mutating func resealForHealing(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard healing.scanned, healing.envelopeQueue.isEmpty, healing.envelopesInFlight == nil else { return [] }
        queueResealedEnvelopes(core: core)
        return continueHealing(core: core, now: now)
    }

    /// Re-appends lost log entries, then re-uploads lost change sets, one request at a time;
    /// closes the rollback incident when nothing is left.
    mutating func continueHealing(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard healing.logInFlight == nil, healing.restoreInFlight == nil else { return [] }
        if phase == .anonymous {
            // Refused by a server that forgot the entries adding this device: give them back
            // before authenticating (a restore append needs no session), then reconnect.
            guard let entry = healing.logQueue.first else { return restartConnection(core: core, now: now) }
            healing.logQueue.removeFirst()
            return [appendRestored(entry, core: core, now: now)]
        }
        guard case .syncing = phase else { return [] }
        if !healing.logQueue.isEmpty {
            let entry = healing.logQueue.removeFirst()
            return [appendRestored(entry, core: core, now: now)]
        }
        guard healing.envelopesInFlight == nil else { return [] }
        if !healing.envelopeQueue.isEmpty {
            // After the log is restored (the server refuses envelopes to members it does not
            // know), before the change sets that need the keys.
            let batch = healing.envelopeQueue.removeFirst()
            let (id, effect) = send(
                .putKeyEnvelopes(.with { $0.envelopes = batch }), kind: .resealEnvelopes, now: now)
            healing.envelopesInFlight = (id, batch)
            return [effect]
        }
        // A refused grant re-seal keeps its mark: if this connection ends before the longer log,
        // the next one seals the grant again.
        if healing.envelopesAwaitingLog.isEmpty {
            for assistant in healing.grantsSealing {
                do { try core.markGrantUnsealed(assistant, false) } catch { return connectionLost(now: now, core: core) }
            }
            healing.grantsSealing = []
        }
        if !healing.restoreQueue.isEmpty {
            var budget = configuration.limits.maxFrameBytes - 4096
            var batch: [ChangeSet] = []
            while let next = healing.restoreQueue.first, batch.count < configuration.limits.maxChangeSetsPerPush {
                budget -= next.wire.count + 8
                if budget < 0 && !batch.isEmpty { break }
                batch.append(healing.restoreQueue.removeFirst())
            }
            var push = Cloak_V1_Push()
            push.changeSets = batch.map { Data($0.wire) }
            push.restore = true
            let (id, effect) = send(.push(push), kind: .restorePush, now: now)
            healing.restoreInFlight = (id, batch.map(\.hash))
            return [effect]
        }
        // An assistant's own chains given back (`resend`) are part of the healing: until they
        // are stored, a new connection queues them again (CI seed 10040 lost them with one).
        guard healing.rollback, healing.scanned, healing.envelopesInFlight == nil, resend.isEmpty else { return [] }
        healing.rollback = false
        var output = CoreOutput()
        let id = Incident(kind: .serverRollback, detail: "", openedAt: 0).id
        do { try core.resolve(id, &output) } catch { return connectionLost(now: now, core: core) }
        return [.surface(output)] + pushIfReady(core: core, now: now)
    }

    private mutating func appendRestored(_ entry: DeviceLogEntry, core: ClientCore, now: UInt64) -> SyncEffect {
        let (id, effect) = send(.appendDeviceLog(.with {
            $0.entry = Data(entry.wire)
            $0.restore = true
            if let account = core.account { $0.accountID = Data(account.bytes) }
        }), kind: .restoreLog, now: now)
        healing.logInFlight = id
        return effect
    }

    /// A restore push's results: what the server took, or why not.
    mutating func restoreAcknowledged(_ ack: Cloak_V1_PushAck, requestID: UInt64, core: ClientCore, now: UInt64)
        -> [SyncEffect]
    {
        guard healing.restoreInFlight?.id == requestID else { return [] }
        healing.restoreInFlight = nil
        var output = CoreOutput()
        for result in ack.results where result.error != .unspecified {
            output.events.append(SecurityEvent(
                .protocolViolation, detail: "the server refused a restored change set: \(result.error)"))
        }
        return (output.events.isEmpty ? [] : [.surface(output)]) + continueHealing(core: core, now: now)
    }

    /// A healing request finished (Done or an error).
    mutating func healingReplyDone(_ requestID: UInt64, error: ProtocolError?, core: ClientCore, now: UInt64) -> [SyncEffect] {
        if healing.logInFlight == requestID {
            healing.logInFlight = nil
            if error == .deviceLogConflict {
                // Another member re-appended it first: fetch the log; what is still missing
                // is queued again from the served length.
                healing.logQueue = []
                // Before authenticating: the server's log moved (another member restored it, or
                // it forked); look again later, with backoff.
                // A refused device: another member gave the entries back first (the next
                // authentication succeeds), or the server's log holds other entries where this
                // device's continue — a fork, as a server restored from an older backup makes.
                // Only members may read the log, so the device cannot tell which (§30).
                guard phase != .anonymous else {
                    return unfoundedRefusal(
                        "the server refuses this device, and its device log holds other entries where this device's "
                            + "continue (a forked log, as a server restored from an older backup makes); link this device again",
                        stopping: "the server refuses this device: the account's device log forked", core: core, now: now)
                }
                return fetchLog(core: core, now: now) + continueHealing(core: core, now: now)
            }
            if error != nil { healing.logQueue = [] }
            if healing.logQueue.isEmpty, phase != .anonymous {
                // Restored: the served log now extends this device's (closing the incident).
                return fetchLog(core: core, now: now) + continueHealing(core: core, now: now)
            }
        }
        if let sent = healing.envelopesInFlight, sent.id == requestID {
            healing.envelopesInFlight = nil
            if error != nil {
                // Dropped, the keys in it were never sealed to their recipient again (large seed
                // 9: a member re-sealed epoch 7 before another had given its log entry back, and
                // a device lacked that key for good).
                healing.envelopesAwaitingLog.append(sent.batch)
                healing.envelopesRefusedAtLog = healing.serverLogLength
                return fetchLog(core: core, now: now) + continueHealing(core: core, now: now)
            }
        }
        return continueHealing(core: core, now: now)
    }
}
