import CloakCrypto
import CloakProtocol
import Foundation
import Logging

extension SyncMachine {
    mutating func handleFrame(_ bytes: [UInt8], core: ClientCore, now: UInt64) -> [SyncEffect] {
        let frame: Cloak_V1_Frame
        do { frame = try FrameCodec.decode(bytes, maxFrameBytes: configuration.limits.maxFrameBytes) } catch {
            // A server that sends garbage is not trusted for this connection (ADV-16, ADV-17).
            return violation("undecodable frame from server: \(error.message)", core: core, now: now)
        }
        deadlines[frame.requestID] = nil
        guard let body = frame.body else { return [] }
        if frame.requestID != 0, frame.requestID == flows.current?.request {
            kinds[frame.requestID] = nil
            if case .error(let error) = body { return flowRefused(error, core: core, now: now) }
            return flowReply(.body(body), core: core, now: now)
        }
        // Catch-up Delivers share the Subscribe's id; every other reply ends its request.
        var kind: RequestKind?
        if case .deliver = body {} else { kind = kinds.removeValue(forKey: frame.requestID) }
        switch body {
        case .serverHello(let hello):
            return handleHello(hello, core: core, now: now)
        case .authResult(let result):
            return authenticated(result, core: core, now: now)
        case .error(let error):
            return serverError(
                ProtocolError(wireCode: error.code, message: error.message, retryAfterMs: error.retryAfterMs), requestID: frame.requestID, kind: kind, core: core,
                now: now)
        case .deliver(let deliver):
            return delivered(deliver, requestID: frame.requestID, core: core, now: now)
        case .pushAck(let ack):
            return pushAcknowledged(ack, requestID: frame.requestID, core: core, now: now)
        case .deviceLogEntries(let entries) where kind == .removalCheck:
            return removalChecked(entries, core: core, now: now)
        case .deviceLogEntries(let entries):
            logFetchInFlight = false
            var served: Int?
            var forkedAt: UInt64?
            var effects = run(core: core, now: now) {
                var output = try core.receiveDeviceLog(entries.entries.map(Array.init))
                output.pushOutbox = try core.resealStaleOutbox() || output.pushOutbox
                served = output.servedLogLength
                forkedAt = output.events.first { $0.kind == .deviceLogFork }?.seq
                return output
            }
            effects += servedLogMoved(to: entries.logLength, forkedAt: forkedAt, core: core, now: now)
            effects += releaseEnvelopesAwaitingLog(core: core, now: now)
            if let served, healing.logQueue.isEmpty, healing.logInFlight == nil {
                // The server lost log entries: give them back (restore appends, §18).
                healing.logQueue = core.logEntries(from: served)
                effects += continueHealing(core: core, now: now)
            }
            effects += fetchWidenedScope(core: core, now: now)
            if logFetchAgain {
                logFetchAgain = false
                effects += fetchLog(core: core, now: now)
            }
            return effects
        case .keyEnvelopes(let list):
            envelopeFetchInFlight = false
            let parsed = list.envelopes.compactMap { try? KeyEnvelope(message: $0) }
            // Conversation keys sealed to an assistant (PROTOCOL.md §29).
            let scoped = list.envelopes.compactMap { $0.conversationID.isEmpty ? nil : try? ConversationKeyEnvelope(message: $0) }
            let lost = try? core.lostOwnEnvelope(in: parsed)
            var effects = run(core: core, now: now) {
                var output = try core.receiveEnvelopes(parsed, conversationKeys: scoped)
                output.pushOutbox = try core.resealStaleOutbox() || output.pushOutbox
                return output
            }
            if let epoch = lost ?? nil, !healing.rollback {
                effects += rollbackDetected(
                    "it no longer holds the key envelope of epoch \(epoch) sealed to this device", core: core, now: now)
                effects += resealForHealing(core: core, now: now)
            }
            return effects
        case .snapshots(let list):
            let widening = frame.requestID == wideningRequest
            let effects = snapshotsReceived(list, core: core, now: now)
            return widening ? effects + widenedSnapshotsDone(now: now) : effects
        case .chainHeads(let page):
            return headsReceived(page, core: core, now: now)
        case .accountNotice(let notice):
            return noticeReceived(notice, core: core, now: now)
        case .done:
            return done(requestID: frame.requestID, core: core, now: now)
        case .pong:
            return []
        default:
            return violation("unexpected \(body.name) from server", core: core, now: now)
        }
    }

    private mutating func done(requestID: UInt64, core: ClientCore, now: UInt64) -> [SyncEffect] {
        if requestID == healing.logInFlight || requestID == healing.envelopesInFlight?.id {
            return healingReplyDone(requestID, error: nil, core: core, now: now)
        }
        if snapshotInFlight == requestID {
            snapshotInFlight = nil
            return run(core: core, now: now) {
                try core.snapshotStored()
                return CoreOutput()
            }
        }
        if let sent = envelopesInFlight, sent.id == requestID {
            envelopesInFlight = nil
            return run(core: core, now: now) {
                try core.envelopesDelivered(sent.queued)
                var output = CoreOutput()
                output.pushEnvelopes = true
                return output
            }
        }
        return []
    }

    private mutating func handleHello(_ hello: Cloak_V1_ServerHello, core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard phase == .awaitingHello else { return violation("second ServerHello", core: core, now: now) }
        deadlines[0] = nil
        // No negotiation: the server must offer exactly our version (ADV-25).
        guard hello.versions.contains(ProtocolVersion.current) else {
            return violation("server does not offer protocol version \(ProtocolVersion.current)", core: core, now: now)
        }
        guard hello.nonce.count == AuthChallenge.nonceByteCount else {
            return violation("malformed ServerHello", core: core, now: now)
        }
        self.hello = hello
        if verifyingRemoval, let account = core.account {
            // Believe a removal only from the signed log (§23), fetched without authenticating:
            // a member (even a removed one) proves itself with a signature over this nonce.
            phase = .anonymous
            var fetch = Cloak_V1_FetchDeviceLog()
            fetch.accountID = Data(account.bytes)
            fetch.deviceID = Data(core.me.bytes)
            fetch.signature = Data(
                LogAccessProof.sign(serverNonce: Array(hello.nonce), account: account, device: core.me, key: core.identity.signing))
            return [send(.fetchDeviceLog(fetch), kind: .removalCheck, now: now).1]
        }
        guard let account = core.account, !core.removedFromAccount else {
            // No device session possible: the account-less device's flows run anonymously.
            phase = .anonymous
            return advanceFlows(core: core, now: now)
        }
        phase = .authenticating
        let request = Self.authenticate(hello, account: account, device: core.me, key: core.identity.signing)
        return [send(.authenticate(request), kind: .authenticate, now: now).1]
    }

    private mutating func authenticated(_ result: Cloak_V1_AuthResult, core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard phase == .authenticating else { return violation("unexpected AuthResult", core: core, now: now) }
        attempt = 0
        unfoundedRefusals = 0
        var effects: [SyncEffect] = [.state(.catchingUp)]
        effects += checkAuthResult(result, core: core, now: now)
        effects += fetchLog(core: core, now: now)
        effects += fetchEnvelopes(now: now)
        var reopened = CoreOutput()
        reopened.gaps = core.ledger.openGaps()
        reopened.pushEnvelopes = true
        let cursor = (try? core.store.read { tx in try Ledger.cursor(tx) }) ?? 0
        lastAckedCursor = cursor
        if cursor == 0 && !core.hasLocalHistory {
            phase = .bootstrapping
            effects.append(send(.fetchSnapshots(Cloak_V1_FetchSnapshots()), kind: .snapshots, now: now).1)
        } else {
            let anchor = try? core.store.read { tx in try Ledger.anchor(tx) }
            effects += subscribe(after: cursor, anchor: anchor ?? nil, now: now)
            effects += fetchWidenedScope(core: core, now: now)
        }
        effects += follow(reopened, core: core, now: now)
        return effects + advanceFlows(core: core, now: now)
    }

    mutating func subscribe(after cursor: UInt64, anchor: ChangeSetHash? = nil, now: UInt64) -> [SyncEffect] {
        phase = .syncing(caughtUp: false)
        zeroSubscriptionAt = nil  // set again by the callers whose catch-up fetches a scope's history
        var subscribe = Cloak_V1_Subscribe()
        subscribe.afterCursor = cursor
        // The hash of what this device processed at `cursor`: a server that reuses the cursor
        // for other content (a restored backup) refuses with CURSOR_MISMATCH (ADV-44).
        if let anchor, cursor > 0 { subscribe.anchorHash = Data(anchor.bytes) }
        // Catch-up may take a while for a big account: its deliveries, not a single reply,
        // show the subscription is alive, so it has no deadline.
        let (id, effect) = send(.subscribe(subscribe), kind: .subscribe, timed: false, now: now)
        subscribeID = id
        return [effect]
    }

    private mutating func snapshotsReceived(_ list: Cloak_V1_SnapshotList, core: ClientCore, now: UInt64) -> [SyncEffect] {
        let snapshots = list.snapshots.compactMap { try? Snapshot(message: $0) }
        var effects = run(core: core, now: now) { try core.loadSnapshots(snapshots) }
        if phase == .bootstrapping {
            effects += subscribe(after: 0, now: now)
            if core.isAssistant { zeroSubscriptionAt = core.log?.headIndex }
        }
        return effects
    }

    private mutating func delivered(_ deliver: Cloak_V1_Deliver, requestID: UInt64, core: ClientCore, now: UInt64)
        -> [SyncEffect]
    {
        let items = deliver.items.map { (cursor: $0.cursor, wire: Array($0.changeSet)) }
        var damaged = false
        var effects = run(core: core, now: now) {
            let output = try core.receive(items)
            damaged = output.events.contains { Healing.damageKinds.contains($0.kind) }
            return output
        }
        // A rejected copy must not cost the data (§"What a client checks, and when"): compare
        // heads with the server again, which asks for whatever position it holds that this
        // device lacks — the damaged one included, under a name the server cannot fake.
        if damaged { healing.rescanWanted = true }
        // Only the subscription's own catch-up (or a live delivery) says "caught up"; the reply
        // to a gap re-fetch carries caught_up too but says nothing about the subscription.
        let isSubscription = requestID == subscribeID || requestID == 0
        if !isSubscription { kinds[requestID] = nil }
        if deliver.caughtUp, isSubscription, case .syncing(let caughtUp) = phase, !caughtUp {
            phase = .syncing(caughtUp: true)
            zeroSubscriptionCaughtUp(core: core)
            effects.append(.state(.live))
            effects += pushIfReady(core: core, now: now)
            healing.rescanWanted = false  // this first scan covers what catch-up rejected
            effects += startHeadsScan(core: core, now: now)
            effects += run(core: core, now: now) { try core.reviewExpectations() }
            // A device-log incident from an earlier connection is looked at again at once on
            // each new one: the served log decides whether it still holds.
            logRecheckAt = 0
            effects += recheckLogIncident(core: core, now: now)
        }
        if healing.rescanWanted, case .syncing(true) = phase { effects += rescanHeads(core: core, now: now) }
        effects += ackCursorIfDue(core: core, now: now, force: deliver.caughtUp)
        return effects
    }

    private mutating func pushAcknowledged(_ ack: Cloak_V1_PushAck, requestID: UInt64, core: ClientCore, now: UInt64)
        -> [SyncEffect]
    {
        if healing.restoreInFlight?.id == requestID {
            return restoreAcknowledged(ack, requestID: requestID, core: core, now: now)
        }
        guard let inFlight = pushInFlight, inFlight.id == requestID else { return [] }
        pushInFlight = nil
        var done: [ChangeSetHash] = []
        var retry = false
        var gapped: Set<ChangeSetHash> = []
        var restoring: Set<ChangeSetHash> = []
        // An assistant's lost change sets pushed again that the server still refuses for a
        // lasting reason are not tried again: the same push would be refused the same way for
        // ever (seed 222), and members restore the chains they hold (§19).
        let resending = Set(resend.map(\.hash))
        var givenUp: Set<ChangeSetHash> = []
        var answered: Set<ChangeSetHash> = []
        let scopeRefused = core.isAssistant && ack.results.contains { $0.error == .outOfScope }
        let pushed = scopeRefused ? Dictionary(
            ((try? core.outboxChangeSets(limit: Int.max >> 1)) ?? []).map { ($0.hash, $0.header.conversation) },
            uniquingKeysWith: { first, _ in first }) : [:]
        var awaitLog = false
        var output = CoreOutput()
        for result in ack.results {
            guard let hash = try? ChangeSetHash(validating: result.hash, field: "hash") else { continue }
            answered.insert(hash)
            switch result.error {
            case .unspecified:
                done.append(hash)
                acknowledgedThrough = max(acknowledgedThrough, result.cursor)
            case .invalidField where core.isAssistant && core.hasOpenLogIncident:
                // The server lost the log entry this change set names (a restored backup); an
                // assistant appends nothing to the log (§29), its members give the entry back:
                // keep the change set (or the lost one given back) and push it again then (it
                // was dropped, and its reply with it, seed 650) — when the served log moves or
                // on a new connection, not on a timer (SyncMachine+Scope).
                awaitLog = true
            case let error where resending.contains(hash) && ![.rateLimited, .quotaExceeded, .internal].contains(error):
                givenUp.insert(hash)
            case .gap:
                // The server lacks the chain before this change set. An assistant makes no heads
                // scan (§29): it gives back its own change sets the server acknowledged and then
                // lost (a restored backup) with a restore push, else it would retry the same
                // refused push for ever (found by the simulator, seeds 13 and 222).
                retry = true
                gapped.insert(hash)
            case .rateLimited, .quotaExceeded, .internal:
                retry = true
            case .staleDeviceLog where unanswered.contains(hash):
                // Pushed before on a connection that ended unanswered: the server may have
                // stored and fanned it out, then lost it (a restored backup), and other devices
                // may hold it. A re-seal would sign a second change set at its position — a
                // fork no device can heal (seed 917). It goes back as it is, a restore push
                // (§19): its bytes reached the server once already, so the stale-log rule has
                // nothing left to protect from a server colluding with the removed device. An
                // assistant too: its restore pushes may carry its own change sets (§29).
                retry = true
                restoring.insert(hash)
                // Refused as stale on an earlier, answered push too: it is not re-sealed now.
                core.outbox.staleRefused.remove(hash)
            case .staleDeviceLog:
                // Written before this device learned of a removal: fetch the log and the new
                // key; the core re-seals these operations under the newest head (§19).
                retry = true
                core.outbox.staleRefused.insert(hash)
                output.fetchDeviceLog = true
                output.fetchKeyEnvelopes = true
            case .outOfScope where core.isAssistant:
                // A restriction or revocation took the conversation from this assistant's scope
                // while the change set was on its way (§29): an honest race, not an attack. The
                // entry's cut-off decides, so it waits for the log (no event): past the cut-off,
                // the log's arrival deletes it and gives its chain position back (no member holds
                // it, §10); within it, the server stored it before the entry, and a refusal once
                // the log shows the conversation gone acknowledges it.
                if let conversation = pushed[hash], core.inCurrentScope(conversation) {
                    awaitLog = true
                    retry = true
                } else {
                    done.append(hash)
                }
                output.fetchDeviceLog = true
            default:
                // The server refuses this change set for good (e.g. our chain forked after a
                // local-state rollback, ADV-36): drop it from the outbox and say so.
                done.append(hash)
                output.events.append(
                    SecurityEvent(.protocolViolation, detail: "server refused our change set: \(result.error)"))
            }
        }
        var effects: [SyncEffect] = []
        // Answered now, except those going back as restores: until one is stored, it may still
        // be held elsewhere (a refused restore must not turn into a re-seal on the next try).
        // Nor does an answer that keeps a change set in the outbox (retried: rate limited, a
        // lost log entry…) undo an earlier push of it that went unanswered: the server may have
        // fanned that out before it lost it, and a later stale refusal must restore those bytes,
        // not re-seal them (simulator seed 499: an assistant's own chain forked at seq 8).
        let stillUncertain = unanswered.intersection(answered).subtracting(done)
        unanswered.subtract(answered)
        unanswered.formUnion(restoring)
        unanswered.formUnion(stillUncertain)
        if !restoring.isEmpty {
            restoreUnanswered(restoring, core: core)
            effects += continueHealing(core: core, now: now)
        }
        let settled = Set(done)
        resend.removeAll { settled.contains($0.hash) || givenUp.contains($0.hash) }
        if healing.rollback, resend.isEmpty, !resending.isEmpty { effects += continueHealing(core: core, now: now) }
        if core.isAssistant, !gapped.isEmpty { queueLostOwnChangeSets(gapped, core: core) }
        do { try core.acknowledge(done, answered: answered.subtracting(restoring).subtracting(stillUncertain)) } catch {
            return scheduleReconnect(now: now, core: core)
        }
        if !output.events.isEmpty { effects.append(.surface(output)) }
        if output.fetchDeviceLog { effects += fetchLog(core: core, now: now) }
        if output.fetchKeyEnvelopes { effects += fetchEnvelopes(now: now) }
        if awaitLog { pushAwaitsLog = healing.serverLogLength }
        if retry {
            pushRetryAt = now + configuration.reconnectMinMillis * 5
            return effects
        }
        return effects + pushIfReady(core: core, now: now)
    }

    mutating func pushIfReady(core: ClientCore, now: UInt64) -> [SyncEffect] {
        // Lost history goes back first: own new change sets follow it in their chains.
        guard case .syncing = phase, pushInFlight == nil, now >= pushRetryAt, !healing.busy, pushAwaitsLog == nil else {
            return []
        }
        pushRetryAt = 0
        let limit = min(configuration.pushBatch, configuration.limits.maxChangeSetsPerPush)
        // Own change sets the server lost go first: the outbox's follow them in their chains.
        guard let candidates = resend.isEmpty ? try? core.outboxChangeSets(limit: limit) : Array(resend.prefix(limit)),
            !candidates.isEmpty
        else { return [] }
        // Stay within the frame limit: a push is one WebSocket message (PROTOCOL.md §24).
        var budget = configuration.limits.maxFrameBytes - 4096
        var fitting: [ChangeSet] = []
        for changeSet in candidates {
            budget -= changeSet.wire.count + 8
            if budget < 0 && !fitting.isEmpty { break }
            fitting.append(changeSet)
        }
        var push = Cloak_V1_Push()
        push.changeSets = fitting.map { Data($0.wire) }
        // Own change sets the server acknowledged and lost go back as a restore push (§29): an
        // ordinary one refuses those sealed before a removal as STALE_DEVICE_LOG, and when no
        // member received them first, nothing else can give them back (seed 222).
        push.restore = !resend.isEmpty
        // Marked durably before the bytes leave (§19): a crash must not forget this push.
        guard push.restore || markPushed(fitting.map(\.hash), core: core, now: now) else { return [] }
        let (id, effect) = send(.push(push), kind: .push, now: now)
        pushInFlight = (id, fitting.map(\.hash))
        return [effect]
    }
}
