import CloakCrypto
import CloakProtocol
import Foundation
import Logging

/// Events that drive the ``SyncMachine``.
enum SyncEvent: Sendable {
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
}

/// What the driver must do.
enum SyncEffect: Sendable {
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

/// The client's sync protocol as a synchronous state machine (sans-IO): events in, effects out,
/// with time read from the core's injected clock. It implements PROTOCOL.md's connection flow
/// — Hello → Authenticate → (bootstrap snapshots) → Subscribe → catch-up → live — plus pushing
/// the outbox with one push in flight, re-requesting gaps, fetching the device log and key
/// envelopes when change sets need them, pings, request timeouts and reconnection with
/// exponential backoff and full jitter.
struct SyncMachine {
    enum Phase: Equatable {
        case stopped
        case waiting(until: UInt64)
        case connecting
        case awaitingHello
        case authenticating
        case bootstrapping
        case syncing(caughtUp: Bool)
    }

    var phase: Phase = .stopped
    var attempt = 0
    var nextRequestID: UInt64 = 1
    var deadlines: [UInt64: (kind: String, at: UInt64)] = [:]
    var pushInFlight: (id: UInt64, hashes: [ChangeSetHash])?
    var snapshotInFlight: UInt64?
    var lastSent: UInt64 = 0
    var lastAckedCursor: UInt64 = 0
    var lastAckAt: UInt64 = 0
    var pushRetryAt: UInt64 = 0
    var logFetchInFlight = false
    /// The kind of every request still waiting for its reply (errors name the request).
    var kinds: [UInt64: String] = [:]
    /// The request id of this connection's Subscribe (its catch-up Delivers carry it).
    var subscribeID: UInt64 = 0
    /// Queued key envelopes sent and not yet confirmed.
    var envelopesInFlight: (id: UInt64, queued: [Int64])?
    var envelopeFetchInFlight = false
    let configuration: ClientConfiguration

    init(configuration: ClientConfiguration) {
        self.configuration = configuration
    }

    /// When the driver should next deliver `.tick`.
    func nextDeadline(core: ClientCore) -> UInt64? {
        var times: [UInt64] = deadlines.values.map(\.at)
        if case .waiting(let until) = phase { times.append(until) }
        if case .syncing = phase {
            times.append(lastSent + configuration.pingIntervalMillis)
            if let batch = core.nextBatchDeadline { times.append(batch) }
            if pushRetryAt > 0 { times.append(pushRetryAt) }
        }
        return times.min()
    }

    mutating func handle(_ event: SyncEvent, core: ClientCore) -> [SyncEffect] {
        let now = core.now()
        switch event {
        case .start:
            guard phase == .stopped || phase.isWaiting, core.account != nil, !core.removedFromAccount else { return [] }
            return beginConnecting(now: now)
        case .stop:
            phase = .stopped
            resetConnectionState()
            return [.close, .state(.offline(retryAtMillis: nil))]
        case .connected:
            guard phase == .connecting else { return [] }
            deadlines[Self.connectRequest] = nil
            phase = .awaitingHello
            deadlines[0] = ("hello", now + configuration.requestTimeoutMillis)
            return []
        case .disconnected:
            return scheduleReconnect(now: now, random: core.random)
        case .frame(let bytes):
            return handleFrame(bytes, core: core, now: now)
        case .tick:
            return tick(core: core, now: now)
        case .outboxChanged:
            return pushIfReady(core: core, now: now)
        case .coreOutput(let output):
            return follow(output, core: core, now: now)
        }
    }

    /// A pseudo request id for the connect attempt itself (a stalled WebSocket upgrade).
    static let connectRequest = UInt64.max

    mutating func beginConnecting(now: UInt64) -> [SyncEffect] {
        phase = .connecting
        deadlines[Self.connectRequest] = ("connect", now + configuration.requestTimeoutMillis)
        return [.connect, .state(.connecting)]
    }

    mutating func resetConnectionState() {
        deadlines = [:]
        pushInFlight = nil
        snapshotInFlight = nil
        logFetchInFlight = false
        envelopeFetchInFlight = false
        kinds = [:]
        subscribeID = 0
        envelopesInFlight = nil
    }

    mutating func scheduleReconnect(now: UInt64, random: any RandomSource, refused: String? = nil) -> [SyncEffect] {
        guard phase != .stopped else { return [] }
        resetConnectionState()
        attempt += 1
        let cap = min(configuration.reconnectMaxMillis, configuration.reconnectMinMillis << UInt64(min(attempt, 20)))
        // Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): spreads
        // reconnecting devices so a restarted server is not hit by all of them at once.
        let delay = SystemRandomUniform.next(below: cap, using: random)
        let until = now + max(delay, configuration.reconnectMinMillis / 2)
        phase = .waiting(until: until)
        var effects: [SyncEffect] = [.close]
        if let refused {
            effects.append(.state(.refused(refused)))
        } else {
            effects.append(.state(.offline(retryAtMillis: until)))
        }
        return effects
    }

    mutating func send(_ body: Cloak_V1_Frame.OneOf_Body, kind: String?, now: UInt64) -> (UInt64, SyncEffect) {
        let id = nextRequestID
        nextRequestID += 1
        if let kind { deadlines[id] = (kind, now + configuration.requestTimeoutMillis) }
        kinds[id] = kind ?? body.name
        lastSent = now
        return (id, .send(FrameCodec.encode(body, requestID: id)))
    }
}

extension SyncMachine.Phase {
    var isWaiting: Bool {
        if case .waiting = self { return true }
        return false
    }
}

/// Uniform integers from a ``RandomSource`` (jitter must not use ambient randomness).
enum SystemRandomUniform {
    static func next(below bound: UInt64, using random: any RandomSource) -> UInt64 {
        guard bound > 1 else { return 0 }
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { random.fill($0) }
        return value % bound
    }
}
