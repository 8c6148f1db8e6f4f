@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Logging

/// Events that drive the ``SyncMachine``.
enum SyncEvent {
    /// Start (or resume) syncing.
    case start
    /// Stop syncing and close the connection.
    case stop
    /// The transport connected.
    case connected
    /// The transport closed or failed.
    case disconnected
    /// A binary WebSocket message arrived.
    case frame([UInt8])
    /// Time passed (the driver calls this at the deadline the machine asked for, or sooner).
    case tick
    /// New change sets are in the outbox.
    case outboxChanged
    /// A core operation asked for fetches.
    case coreOutput(CoreOutput)
    /// Run a lifecycle flow (create, link, recover, remove…) over the connection.
    case startFlow(FlowID, any LifecycleFlow)
}

/// What the driver must do.
enum SyncEffect {
    /// Open a connection to the server.
    case connect
    /// Close the connection.
    case close
    /// Send one binary message.
    case send([UInt8])
    /// Conversations changed or security events happened: tell the app.
    case surface(CoreOutput)
    /// The connection state changed.
    case state(ConnectionState)
    /// A lifecycle flow ended.
    case flowFinished(FlowID, Result<FlowOutcome, ClientError>)
}

/// The client's connection as the app sees it.
public enum ConnectionState: Sendable, Equatable {
    /// Not connected; will retry at the given time (ms since the Unix epoch), or never (nil).
    case offline(retryAtMillis: UInt64?)
    /// Connecting or authenticating.
    case connecting
    /// Authenticated; downloading what was missed.
    case catchingUp
    /// Up to date; changes flow both ways as they happen.
    case live
    /// The server refused this device (removed, unknown account); syncing stopped.
    case refused(String)
}

/// What a request was, so its reply or error is routed and its timeout named.
enum RequestKind: String, Sendable {
    case hello, connect, authenticate, subscribe, push, fetchChangeSets = "fetch-change-sets"
    case deviceLog = "device-log", keyEnvelopes = "key-envelopes", putEnvelopes = "put-envelopes"
    case snapshot, snapshots, ping, ackCursor = "ack-cursor", flow
    case heads, restoreLog = "restore-log", restorePush = "restore-push", resealEnvelopes = "reseal-envelopes"
    case removalCheck = "removal-check"
}

/// The client's side of the protocol as one synchronous state machine (sans-IO): events in,
/// effects out, time read from the core's injected clock. It owns the connection: PROTOCOL.md's
/// flow — Hello → Authenticate → (bootstrap snapshots) → Subscribe → catch-up → live — with
/// pushing the outbox one push at a time, re-requesting gaps, fetching the device log and key
/// envelopes when change sets need them, pings, request timeouts and reconnection with
/// exponential backoff and full jitter; and the account's lifecycle flows (``LifecycleFlow``:
/// create, link, recover, remove, recovery setup), which run over the same connection —
/// authenticated as this device once it has an account, anonymous before.
struct SyncMachine {
    enum Phase: Equatable {
        case stopped
        case waiting(until: UInt64)
        case connecting
        case awaitingHello
        /// Authenticating as this device (for sync and device flows).
        case authenticating
        /// Connected without a device session (an account-less device's flows).
        case anonymous
        case bootstrapping
        case syncing(caughtUp: Bool)
    }

    var phase: Phase = .stopped
    /// The app asked for background sync.
    var wantSync = false
    var attempt = 0
    var nextRequestID: UInt64 = 1
    var deadlines: [UInt64: (kind: RequestKind, at: UInt64)] = [:]
    /// The kind of every request still waiting for its reply (errors name the request).
    var kinds: [UInt64: RequestKind] = [:]
    var pushInFlight: (id: UInt64, hashes: [ChangeSetHash])?
    var snapshotInFlight: UInt64?
    var lastSent: UInt64 = 0
    var lastAckedCursor: UInt64 = 0
    var lastAckAt: UInt64 = 0
    var pushRetryAt: UInt64 = 0
    /// An assistant's push was refused naming a log entry the server lost (§29): the outbox
    /// waits until the served log moves from this length (or a new connection), not on a timer.
    var pushAwaitsLog: UInt64?
    /// An assistant's own acknowledged change sets the server lost, pushed again before the
    /// outbox, and the chains queued on this connection (``queueLostOwnChangeSets(_:core:)``).
    var resend: [ChangeSet] = []
    var resentChains: Set<ChainKey> = []
    /// Own change sets pushed on a connection that ended before the push's answer came, or
    /// before a restart (the outbox's durable mark): the server may have stored and fanned
    /// them out (and, restored from a backup, lost them since), so a later `STALE_DEVICE_LOG`
    /// for one is no proof no other device holds it (SyncMachine+Unanswered).
    var unanswered: Set<ChangeSetHash> = []
    /// The FetchSnapshots of an assistant's widened scope and the log head index when it was
    /// sent; the head index when this connection's catch-up from cursor 0 began, if it is one
    /// an assistant makes to fetch its scope's history (SyncMachine+Scope).
    var wideningRequest: UInt64?
    var wideningAt: UInt64 = 0
    /// A widening's FetchSnapshots the server refused is asked again then (on this connection),
    /// after a pause that doubles with each refusal in a row.
    var wideningRetryAt: UInt64?
    var wideningRefusals = 0
    var zeroSubscriptionAt: UInt64?
    var logFetchInFlight = false
    /// When an open device-log incident is next looked at again by fetching the log.
    var logRecheckAt: UInt64 = 0
    /// The server said the log grew while a fetch was in flight: fetch again when it ends.
    var logFetchAgain = false
    var envelopeFetchInFlight = false
    /// The request id of this connection's Subscribe (its catch-up Delivers carry it).
    var subscribeID: UInt64 = 0
    /// Queued key envelopes sent and not yet confirmed.
    var envelopesInFlight: (id: UInt64, queued: [Int64])?
    /// The ServerHello of this connection (its nonce is what authentication signs).
    var hello: Cloak_V1_ServerHello?
    /// Lifecycle flows: the running one first.
    var flows = FlowQueue()
    /// Rollback detection, the heads scan and restore uploads (``Healing``).
    var healing = Healing()
    /// The server refused this device (DEVICE_NOT_ACTIVE): the next connection fetches the log
    /// anonymously to verify a signed removal before believing it.
    var verifyingRemoval = false
    /// Refusals (DEVICE_NOT_ACTIVE) the signed log did not back, in a row.
    var unfoundedRefusals = 0
    /// The newest cursor the server assigned to this device's pushes.
    var acknowledgedThrough: UInt64 = 0
    /// When this device next checks for assistants past their expiry (§29), and the number of
    /// the next flow it starts for one.
    var expiryCheckAt: UInt64 = 0
    /// Automatic revocations refused in a row: each doubles the pause before the next try.
    var expiryRetries = 0
    var nextInternalFlow: UInt64 = 1 << 63
    let configuration: ClientConfiguration

    init(configuration: ClientConfiguration) {
        self.configuration = configuration
    }

    /// When the driver should next deliver `.tick`.
    func nextDeadline(core: ClientCore) -> UInt64? {
        var times: [UInt64] = deadlines.values.map(\.at)
        if case .waiting(let until) = phase { times.append(until) }
        // A waiting flow wakes only on a connection: while backing off, its past wake time
        // would wake the driver at once, again and again (found by the simulator, seed 8).
        if let wake = flows.wakeAt, !phase.isWaiting { times.append(wake) }
        if case .syncing = phase {
            times.append(lastSent + configuration.pingIntervalMillis)
            if let batch = core.nextBatchDeadline { times.append(batch) }
            // Only when a push could go then: while healing is busy a past retry time would
            // wake the driver at once, again and again (found by the simulator, seed 102).
            if pushRetryAt > 0, pushInFlight == nil, !healing.busy, pushAwaitsLog == nil { times.append(pushRetryAt) }
            // A heads scan owed after a rejected delivery, when it may start (never a past time
            // that cannot act: that would wake the driver in a loop).
            if healing.rescanWanted, healing.scan == nil, healing.scanned, case .syncing(true) = phase {
                times.append(healing.rescanAt)
            }
            // Only once caught up, where the expiry check runs (a past time before that would
            // wake the driver in a loop during catch-up).
            if let expiry = core.nextAssistantExpiry, case .syncing(true) = phase { times.append(max(expiry, expiryCheckAt)) }
            // §30's clocks, which only the caught-up tick looks at: over a real connection
            // nothing else may wake the driver before the next ping (15 s), so a withheld change
            // set was reported a ping or two late, not `withheld_after` after it was asked for,
            // and a withheld log was looked at again as late (found end to end over WebSockets).
            if case .syncing(true) = phase {
                if configuration.withheldAfterMillis > 0, let review = core.expectations.nextReview(after: configuration.withheldAfterMillis) {
                    times.append(review)
                }
                if !logFetchInFlight, !healing.busy, core.hasOpenLogIncident { times.append(logRecheckAt) }
            }
        }
        return times.min()
    }

    mutating func handle(_ event: SyncEvent, core: ClientCore) -> [SyncEffect] {
        let now = core.now()
        switch event {
        case .start:
            wantSync = true
            guard phase == .stopped || phase.isWaiting, core.account != nil, !core.removedFromAccount else { return [] }
            return beginConnecting(now: now)
        case .stop:
            wantSync = false
            let failed = flows.failAll(.notConnected)
            phase = .stopped
            resetConnectionState()
            return failed + [.close, .state(.offline(retryAtMillis: nil))]
        case .connected:
            guard phase == .connecting else { return [] }
            deadlines[Self.connectRequest] = nil
            phase = .awaitingHello
            deadlines[0] = (.hello, now + configuration.requestTimeoutMillis)
            return []
        case .disconnected:
            return connectionLost(now: now, core: core)
        case .frame(let bytes):
            return handleFrame(bytes, core: core, now: now)
        case .tick:
            return tick(core: core, now: now)
        case .outboxChanged:
            return pushIfReady(core: core, now: now)
        case .coreOutput(let output):
            return follow(output, core: core, now: now)
        case .startFlow(let id, let flow):
            return enqueue(flow, id: id, core: core, now: now)
        }
    }

    /// A pseudo request id for the connect attempt itself (a stalled WebSocket upgrade).
    static let connectRequest = UInt64.max

    /// Whether a connection is needed now: background sync of an account, or a flow.
    func needsConnection(core: ClientCore) -> Bool {
        (wantSync && core.account != nil && !core.removedFromAccount) || !flows.isEmpty
    }

    mutating func beginConnecting(now: UInt64) -> [SyncEffect] {
        phase = .connecting
        deadlines[Self.connectRequest] = (.connect, now + configuration.requestTimeoutMillis)
        return [.connect, .state(.connecting)]
    }

    mutating func resetConnectionState() {
        deadlines = [:]
        kinds = [:]
        if let pushInFlight { unanswered.formUnion(pushInFlight.hashes) }
        pushInFlight = nil
        pushAwaitsLog = nil
        snapshotInFlight = nil
        logFetchInFlight = false
        logFetchAgain = false
        envelopeFetchInFlight = false
        subscribeID = 0
        envelopesInFlight = nil
        hello = nil
        resend = []
        resentChains = []
        wideningRequest = nil
        wideningRetryAt = nil  // a new connection asks at once
        zeroSubscriptionAt = nil
        // A rollback found on a dropped connection is healed on the next one.
        healing = Healing(rollback: healing.rollback)
    }

    /// The connection ended or failed: flows that cannot resume fail, and the machine waits
    /// (backoff) before connecting again if anything still needs a connection.
    mutating func connectionLost(now: UInt64, core: ClientCore) -> [SyncEffect] {
        core.expectations.connectionLost()
        let neverConnected = phase == .connecting
        let failed = flows.connectionLost(neverConnected: neverConnected)
        return failed + scheduleReconnect(now: now, core: core)
    }

    mutating func scheduleReconnect(now: UInt64, core: ClientCore) -> [SyncEffect] {
        guard phase != .stopped else { return [] }
        resetConnectionState()
        guard needsConnection(core: core) else {
            phase = .stopped
            return [.close, .state(.offline(retryAtMillis: nil))]
        }
        attempt += 1
        let cap = min(configuration.reconnectMaxMillis, configuration.reconnectMinMillis << UInt64(min(attempt, 20)))
        // Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): spreads
        // reconnecting devices so a restarted server is not hit by all of them at once.
        let delay = UniformRandom.next(below: cap, using: core.random)
        let until = now + max(delay, configuration.reconnectMinMillis / 2)
        phase = .waiting(until: until)
        return [.close, .state(.offline(retryAtMillis: until))]
    }

    /// Stops for good (until the app acts): a refusal retrying cannot fix.
    mutating func refuse(_ reason: String) -> [SyncEffect] {
        wantSync = false
        let failed = flows.failAll(.notConnected)
        phase = .stopped
        resetConnectionState()
        return failed + [.close, .state(.refused(reason))]
    }

    mutating func send(_ body: Cloak_V1_Frame.OneOf_Body, kind: RequestKind, timed: Bool = true, now: UInt64)
        -> (UInt64, SyncEffect)
    {
        let id = nextRequestID
        nextRequestID += 1
        if timed { deadlines[id] = (kind, now + configuration.requestTimeoutMillis) }
        kinds[id] = kind
        lastSent = now
        return (id, .send(FrameCodec.encode(body, requestID: id)))
    }
}

extension SyncMachine.Phase {
    var isWaiting: Bool {
        if case .waiting = self { return true }
        return false
    }

    /// Authenticated as this device, past the handshake.
    var isDeviceSession: Bool {
        switch self {
        case .bootstrapping, .syncing: true
        default: false
        }
    }
}

/// Uniform integers from a ``RandomSource`` (jitter must not use ambient randomness).
enum UniformRandom {
    static func next(below bound: UInt64, using random: any RandomSource) -> UInt64 {
        guard bound > 1 else { return 0 }
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { random.fill($0) }
        return value % bound
    }
}
