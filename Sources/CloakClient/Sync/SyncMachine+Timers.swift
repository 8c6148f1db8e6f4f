import CloakCrypto
import CloakProtocol
import Foundation
import Logging

extension SyncMachine {
    mutating func tick(core: ClientCore, now: UInt64) -> [SyncEffect] {
        if case .waiting(let until) = phase {
            return now >= until ? beginConnecting(now: now) : []
        }
        if let expired = deadlines.min(by: { $0.value.at < $1.value.at }), expired.value.at <= now {
            // No answer in time: the connection is presumed dead (or the server stalls us).
            core.logger.info("request timed out; reconnecting", metadata: ["request": "\(expired.value.kind.rawValue)"])
            return connectionLost(now: now, core: core)
        }
        var effects = wakeFlow(core: core, now: now)
        guard case .syncing = phase else { return effects }
        effects += run(core: core, now: now) { try core.flushDueBatches() }
        effects += pushIfReady(core: core, now: now)
        effects += pushEnvelopesIfNeeded(core: core, now: now)
        effects += snapshotIfDue(core: core, now: now)
        effects += ackCursorIfDue(core: core, now: now, force: false)
        if case .syncing(true) = phase {
            effects += run(core: core, now: now) { try core.reviewExpectations() }
            effects += continueHealing(core: core, now: now)
            effects += recheckLogIncident(core: core, now: now)
            if healing.rescanWanted { effects += rescanHeads(core: core, now: now) }
            effects += endExpiredAssistants(core: core, now: now)
            effects += retryWideningIfDue(core: core, now: now)
        }
        if now >= lastSent + configuration.pingIntervalMillis {
            var ping = Cloak_V1_Ping()
            ping.nonce = now
            effects.append(send(.ping(ping), kind: .ping, now: now).1)
        }
        return effects
    }

    /// PROTOCOL.md §29: a device that sees an assistant's expiry pass ends its access with a
    /// signed `revoke_assistant` (reason `expired`), which rotates its conversations' keys. Every
    /// device may try; the first append wins and the others find the assistant gone.
    mutating func endExpiredAssistants(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard now >= expiryCheckAt else { return [] }
        expiryCheckAt = now + configuration.assistantExpiryCheckMillis
        var effects: [SyncEffect] = []
        for assistant in core.expiredAssistants() {
            let queued = flows.entries.contains { ($0.flow as? RemoveDeviceFlow)?.device == assistant }
            guard !queued else { continue }
            let id = FlowID(value: nextInternalFlow)
            nextInternalFlow += 1
            effects += enqueue(RemoveDeviceFlow(assistant: assistant, removing: nil, reason: .expired), id: id, core: core, now: now)
        }
        return effects
    }

    /// Runs a core operation and follows what it asks for.
    mutating func run(core: ClientCore, now: UInt64, _ body: () throws -> CoreOutput) -> [SyncEffect] {
        do {
            return follow(try body(), core: core, now: now)
        } catch {
            core.logger.error("local store failure while syncing", metadata: ["error": "\(error)"])
            return connectionLost(now: now, core: core)
        }
    }

    mutating func follow(_ output: CoreOutput, core: ClientCore, now: UInt64) -> [SyncEffect] {
        var effects: [SyncEffect] = []
        if output.removed {
            return [.surface(output)] + refuse("this device was removed from the account")
        }
        if !output.changed.isEmpty || !output.events.isEmpty { effects.append(.surface(output)) }
        guard case .syncing = phase else { return effects }
        if output.fetchDeviceLog { effects += fetchLog(core: core, now: now) }
        if output.fetchKeyEnvelopes { effects += fetchEnvelopes(now: now) }
        for gap in output.gaps {
            var fetch = Cloak_V1_FetchChangeSets()
            fetch.conversationID = Data(gap.conversation.bytes)
            fetch.author = Data(gap.author.bytes)
            fetch.fromSeq = gap.fromSeq
            fetch.toSeq = min(gap.toSeq, gap.fromSeq + UInt64(configuration.limits.maxCatchUpBatch) - 1)
            effects.append(send(.fetchChangeSets(fetch), kind: .fetchChangeSets, now: now).1)
            if case .syncing(let caughtUp) = phase { core.asked(gap, at: caughtUp ? now : nil) }
        }
        if output.pushOutbox { effects += pushIfReady(core: core, now: now) }
        if output.pushEnvelopes { effects += pushEnvelopesIfNeeded(core: core, now: now) }
        if !output.changed.isEmpty { effects += snapshotIfDue(core: core, now: now) }
        // Held change sets accepted once their log entry or key came may be ones a restored
        // server lost after delivering them; the heads scan that would re-upload them looked
        // while they were held (seed 776). Another scan (at most one per period) compares them.
        if output.acceptedHeld, healing.scanned || healing.scan != nil {
            healing.rescanWanted = true
            if case .syncing(true) = phase { effects += rescanHeads(core: core, now: now) }
        }
        return effects
    }

    /// A device-log incident stays open only while the served log still falls short: it is
    /// looked at again (the log fetched) every half `withheldAfterMillis` while nothing else
    /// would fetch it, so it closes once the server serves the whole log again.
    mutating func recheckLogIncident(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard !logFetchInFlight, !healing.busy, now >= logRecheckAt, core.hasOpenLogIncident else { return [] }
        logRecheckAt = now + max(1_000, configuration.withheldAfterMillis / 2)
        return fetchLog(core: core, now: now)
    }

    mutating func fetchLog(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard !logFetchInFlight, let account = core.account else { return [] }
        logFetchInFlight = true
        var fetch = Cloak_V1_FetchDeviceLog()
        fetch.accountID = Data(account.bytes)
        fetch.fromIndex = 0
        return [send(.fetchDeviceLog(fetch), kind: .deviceLog, now: now).1]
    }

    mutating func fetchEnvelopes(now: UInt64) -> [SyncEffect] {
        guard !envelopeFetchInFlight else { return [] }
        envelopeFetchInFlight = true
        return [send(.fetchKeyEnvelopes(Cloak_V1_FetchKeyEnvelopes()), kind: .keyEnvelopes, now: now).1]
    }

    mutating func ackCursorIfDue(core: ClientCore, now: UInt64, force: Bool) -> [SyncEffect] {
        guard let cursor = try? core.store.read({ tx in try Ledger.cursor(tx) }), cursor > lastAckedCursor,
            force || now >= lastAckAt + configuration.ackCursorEveryMillis
        else { return [] }
        lastAckedCursor = cursor
        lastAckAt = now
        var ack = Cloak_V1_AckCursor()
        ack.cursor = cursor
        // No reply comes to an AckCursor.
        let (id, effect) = send(.ackCursor(ack), kind: .ackCursor, timed: false, now: now)
        kinds[id] = nil
        return [effect]
    }

    mutating func snapshotIfDue(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard snapshotInFlight == nil, case .syncing(true) = phase, let snapshot = try? core.snapshotIfDue() else { return [] }
        var put = Cloak_V1_PutSnapshot()
        put.snapshot = snapshot.message
        let (id, effect) = send(.putSnapshot(put), kind: .snapshot, now: now)
        snapshotInFlight = id
        return [effect]
    }

    /// Queued key envelopes (a removal this device made) go to the server until confirmed.
    mutating func pushEnvelopesIfNeeded(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard case .syncing = phase, envelopesInFlight == nil, let queued = try? core.envelopesToSend(), !queued.isEmpty
        else { return [] }
        var put = Cloak_V1_PutKeyEnvelopes()
        put.envelopes = queued.map(\.envelope)
        let (id, effect) = send(.putKeyEnvelopes(put), kind: .putEnvelopes, now: now)
        envelopesInFlight = (id, queued.map(\.id))
        return [effect]
    }

    mutating func serverError(_ error: ProtocolError, requestID: UInt64, kind: RequestKind?, core: ClientCore, now: UInt64)
        -> [SyncEffect]
    {
        core.logger.notice(
            "server error",
            metadata: ["code": "\(error.wireCode)", "message": "\(error.message)", "request": "\(kind?.rawValue ?? "-")"])
        switch error {
        case .deviceNotActive where !verifyingRemoval && core.account != nil:
            // Not believed on the server's word (§23): reconnect, fetch the signed log, verify.
            verifyingRemoval = true
            return connectionLost(now: now, core: core)
        case .deviceNotActive, .unknownAccount, .authFailed, .grantExpired:
            // Retrying cannot help (PROTOCOL.md §23): stop until the app acts (an assistant's
            // grant may be extended by a device; its operator restarts it then).
            return refuse(error.message)
        case .cursorMismatch where kind == .subscribe:
            // The server no longer has what this device processed at its cursor (ADV-44).
            return rollbackDetected("it no longer has the change set this device processed at its cursor", core: core, now: now)
                + subscribe(after: 0, now: now)
        default:
            break
        }
        switch kind {
        case .heads:
            healing.scan = nil
            healing.scanned = true
            return []
        case .restoreLog, .resealEnvelopes:
            return healingReplyDone(requestID, error: error, core: core, now: now)
        case .restorePush:
            healing.restoreInFlight = nil
            return continueHealing(core: core, now: now)
        default:
            break
        }
        if error.closesConnection || phase == .authenticating { return connectionLost(now: now, core: core) }
        switch kind {
        case .push:
            pushInFlight = nil
            pushRetryAt = now + configuration.reconnectMinMillis * 5
        case .snapshot:
            snapshotInFlight = nil
            if error == .staleSnapshot {
                // Someone uploaded a newer snapshot: learn it, so the next one extends it.
                return [send(.fetchSnapshots(Cloak_V1_FetchSnapshots()), kind: .snapshots, now: now).1]
            }
        case .snapshots where requestID == wideningRequest:
            return widenedSnapshotsRefused(error, core: core, now: now)
        case .snapshots where phase == .bootstrapping:
            // No snapshots to start from: catch up from the beginning instead.
            return subscribe(after: 0, now: now)
        case .deviceLog:
            logFetchInFlight = false
        case .keyEnvelopes:
            envelopeFetchInFlight = false
        case .putEnvelopes:
            envelopesInFlight = nil
        case .subscribe:
            // Without a subscription nothing arrives: start over.
            return connectionLost(now: now, core: core)
        default:
            break
        }
        return []
    }

    /// The signed log, fetched after the server refused this device: either it shows this
    /// device's removal (keys wiped, stop), or the refusal is not backed by the log (alarm).
    mutating func removalChecked(_ entries: Cloak_V1_DeviceLogEntries, core: ClientCore, now: UInt64) -> [SyncEffect] {
        verifyingRemoval = false
        var output: CoreOutput
        if entries.entries.isEmpty, entries.logLength > 0 {
            // The server's log does not list this device at all (only its length is served): a
            // restored server that forgot the entries adding it, or a server hiding it.
            output = CoreOutput()
            if entries.logLength < UInt64(core.log?.entries.count ?? 0) { output.servedLogLength = Int(entries.logLength) }
        } else {
            do { output = try core.receiveDeviceLog(entries.entries.map(Array.init)) } catch {
                return connectionLost(now: now, core: core)
            }
        }
        if output.removed || core.removedFromAccount { return follow(output, core: core, now: now) }
        if let served = output.servedLogLength {
            // The server forgot entries (a restored backup), maybe the one that added this
            // device: not a removal. Give them back on this connection (restore appends need no
            // session), then authenticate again. A server that lost log entries lost the key
            // envelopes sealed with them too: the rollback is healed once signed in, as one an
            // AuthResult shows — the log is whole again by then, so the AuthResult would not
            // show it (seed 5368: a device the restored server forgot never re-sealed its keys,
            // and another member lacked epochs 2 and 3 for good).
            healing.logQueue = core.logEntries(from: served)
            let rollback = healing.rollback ? [] : rollbackDetected(
                "it served \(served) device-log entries and refused this device; this device holds "
                    + "\(core.log?.entries.count ?? 0)", core: core, now: now)
            return [.surface(output)] + rollback + continueHealing(core: core, now: now)
        }
        // The log shows this device active. A refusal can be transient (a restored server whose
        // log the account's devices are restoring): try again; an unfounded refusal that
        // persists is the server's doing — an alarm, and syncing stops.
        return [.surface(output)] + unfoundedRefusal(
            "the server refuses this device, but the device log it serves shows no removal",
            stopping: "the server refuses this device without a signed removal", core: core, now: now)
    }

    /// A refusal the signed log does not back: tried again (it can be transient), and after
    /// three in a row without an authentication, an alarm and syncing stops.
    mutating func unfoundedRefusal(_ alarm: String, stopping reason: String, core: ClientCore, now: UInt64) -> [SyncEffect] {
        unfoundedRefusals += 1
        guard unfoundedRefusals >= 3 else { return connectionLost(now: now, core: core) }
        return [.surface(core.raise(SecurityEvent(.protocolViolation, detail: alarm)))] + refuse(reason)
    }

    mutating func violation(_ detail: String, core: ClientCore, now: UInt64) -> [SyncEffect] {
        let output = core.raise(SecurityEvent(.protocolViolation, detail: detail))
        return [.surface(output)] + connectionLost(now: now, core: core)
    }
}

extension SyncMachine {
    /// The server's AccountNotice: a longer device log (fetch and verify it: a new device is
    /// announced on every other device), or recovery attempts (told once each). Only a reason
    /// to look; nothing in it is believed.
    mutating func noticeReceived(_ notice: Cloak_V1_AccountNotice, core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard core.account != nil, !core.removedFromAccount else { return [] }
        var effects: [SyncEffect] = []
        // An assistant's outbox waiting for a log entry the server lost (§29), or re-sealed
        // envelopes waiting for the lost entries to come back, look again as soon as the
        // server's log moves, though it is still no longer than this device's.
        let waiting = pushAwaitsLog != nil || !healing.envelopesAwaitingLog.isEmpty
        let awaited = waiting && notice.deviceLogLength != healing.serverLogLength
        if notice.deviceLogLength > UInt64(core.log?.entries.count ?? 0) || awaited, phase.isDeviceSession {
            if logFetchInFlight { logFetchAgain = true } else { effects += fetchLog(core: core, now: now) }
        }
        if notice.hasRecovery {
            effects += run(core: core, now: now) { try core.receiveRecoveryNotice(notice.recovery) }
        }
        return effects
    }
}
