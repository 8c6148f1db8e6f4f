@_spi(Randomness) public import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Logging
import Metrics
import Foundation

/// The per-connection half of the sync core: a synchronous state machine that turns received
/// frames into replies (through the registry's ``ServerOutput``) and into the store reads it
/// needs. It never awaits: when it needs data it returns a ``StoreRead``, and the driver feeds
/// the answer back with ``readCompleted(_:nowMs:)`` before giving it the next frame.
///
/// ```swift
/// let id = registry.open(nowMs: clock.now)
/// var connection = ServerConnection(id: id, registry: registry, random: SystemRandom(), nowMs: clock.now)
/// for await message in socket {
///     var read = connection.receive(message, nowMs: clock.now)
///     while let next = read {
///         do { read = connection.readCompleted(try await store.perform(next), nowMs: clock.now) }
///         catch { read = connection.readFailed(error, nowMs: clock.now) }
///     }
/// }
/// connection.disconnected()
/// ```
///
/// Frame handling follows PROTOCOL.md §17–§18: ServerHello on open; before authentication only
/// Register, Authenticate, FetchDeviceLog (with a member's proof), MailboxTake, a small
/// MailboxPut, FetchRecovery (recovery words), RecoveryEvaluate, a restore AppendDeviceLog and
/// Ping; a recovery-key session only FetchDeviceLog, FetchKeyEnvelopes, AppendDeviceLog,
/// PutKeyEnvelopes and Ping.
public struct ServerConnection: Sendable {
    /// This connection's id.
    public let id: ConnectionID
    let registry: SyncRegistry
    /// The ServerHello nonce: the challenge this connection's Authenticate must sign.
    let nonce: [UInt8]
    var pending: Pending?

    /// Creates the machine for a connection opened with ``SyncRegistry/open(nowMs:)`` and
    /// sends ServerHello (or SHUTTING_DOWN, when the server is stopping); the nonce comes from
    /// the operating system.
    public init(id: ConnectionID, registry: SyncRegistry, nowMs: UInt64) {
        self.init(id: id, registry: registry, random: SystemRandom(), nowMs: nowMs)
    }

    /// ``init(id:registry:nowMs:)`` with the nonce drawn from `random` (the simulator, tests).
    @_spi(Randomness)
    public init(id: ConnectionID, registry: SyncRegistry, random: any RandomSource, nowMs: UInt64) {
        self.id = id
        self.registry = registry
        nonce = random.bytes(AuthChallenge.nonceByteCount)
        if registry.isShuttingDown {
            registry.close(id, .shuttingDown, requestID: 0)
            return
        }
        if registry.refusedAtOpen(id) {
            registry.close(id, .tooManyConnections, requestID: 0)
            return
        }
        var hello = Cloak_V1_ServerHello()
        hello.versions = ProtocolVersion.supported.sorted()
        hello.nonce = Data(nonce)
        hello.serverTimeMs = nowMs
        hello.limits = registry.configuration.limits.wire
        send(.serverHello(hello), requestID: 0)
    }

    /// Whether the core closed this connection (its further frames are ignored).
    public var isClosed: Bool { registry.isClosed(id) }

    /// Handles one binary WebSocket message.
    public mutating func receive(_ bytes: [UInt8], nowMs: UInt64) -> StoreRead? {
        guard pending == nil, !registry.isClosed(id) else { return nil }
        registry.touch(id, nowMs: nowMs)
        registry.metrics.framesIn.increment()
        if registry.isShuttingDown {
            registry.close(id, .shuttingDown, requestID: 0)
            return nil
        }
        let frame: Cloak_V1_Frame
        do {
            frame = try FrameCodec.decode(bytes, maxFrameBytes: registry.configuration.limits.maxFrameBytes)
        } catch {
            registry.close(id, error, requestID: 0)
            return nil
        }
        return run(frame, nowMs: nowMs, loaded: nil)
    }

    /// Handles a message the transport refused to assemble because it is larger than the frame
    /// limit (FRAME_TOO_LARGE, closes).
    public mutating func receiveOversize(byteCount: Int, nowMs: UInt64) {
        registry.touch(id, nowMs: nowMs)
        let limit = registry.configuration.limits.maxFrameBytes
        registry.close(id, .frameTooLarge(size: byteCount, limit: limit), requestID: 0)
    }

    /// Handles a text WebSocket message: the protocol is binary only (MALFORMED_FRAME, closes).
    public mutating func receiveText(nowMs: UInt64) {
        registry.touch(id, nowMs: nowMs)
        registry.close(id, .malformedFrame("text message; frames are binary"), requestID: 0)
    }

    /// Continues the request that asked for a store read.
    public mutating func readCompleted(_ result: StoreReadResult, nowMs: UInt64) -> StoreRead? {
        guard let waiting = pending else { return nil }
        pending = nil
        guard !registry.isClosed(id) else {
            releaseLoad(of: waiting)
            return nil
        }
        do {
            return try resume(waiting, with: result, nowMs: nowMs)
        } catch {
            fail(error, requestID: waiting.requestID)
            return nil
        }
    }

    /// Fails the request that asked for a store read with INTERNAL (the client retries).
    public mutating func readFailed(_ error: StoreError, nowMs: UInt64) -> StoreRead? {
        guard let waiting = pending else { return nil }
        pending = nil
        releaseLoad(of: waiting)
        registry.logStoreFailure("a store read failed; the request gets INTERNAL", error, connection: id)
        if !registry.isClosed(id) { registry.reject(id, .internalError, requestID: waiting.requestID) }
        return nil
    }

    /// The socket closed: forget the connection.
    public func disconnected() {
        registry.disconnect(id)
    }

    // MARK: Dispatch

    mutating func run(_ frame: Cloak_V1_Frame, nowMs: UInt64, loaded: AccountID?) -> StoreRead? {
        do {
            return try dispatch(frame, nowMs: nowMs, loaded: loaded)
        } catch {
            fail(error, requestID: frame.requestID)
            return nil
        }
    }

    func fail(_ failure: Failure, requestID: UInt64) {
        if failure.closes {
            registry.close(id, failure.error, requestID: requestID)
        } else {
            registry.reject(id, failure.error, requestID: requestID)
        }
    }

    private mutating func dispatch(_ frame: Cloak_V1_Frame, nowMs: UInt64, loaded: AccountID?)
        throws(Failure) -> StoreRead?
    {
        let requestID = frame.requestID
        switch frame.body {
        case .register(let request): return try register(request, requestID: requestID, nowMs: nowMs)
        case .authenticate(let request): return try authenticate(request, frame: frame, nowMs: nowMs, loaded: loaded)
        case .fetchDeviceLog(let request): return try fetchDeviceLog(request, frame: frame, loaded: loaded)
        case .mailboxTake(let request): return try takeMailbox(request, requestID: requestID, nowMs: nowMs)
        case .fetchRecovery(let request): return try fetchRecovery(request, requestID: requestID)
        case .recoveryEvaluate(let request) where registry.session(id) == nil:
            return try evaluateRecovery(request, frame: frame, nowMs: nowMs, loaded: loaded)
        case .mailboxPut(let request) where registry.session(id) == nil:
            try putMailboxBeforeAuthentication(request, requestID: requestID, nowMs: nowMs)
            return nil
        case .appendDeviceLog(let request) where request.restore && registry.session(id) == nil:
            return try restoreAppendBeforeAuthentication(request, frame: frame, loaded: loaded)
        case .ping(let ping):
            var pong = Cloak_V1_Pong()
            pong.nonce = ping.nonce
            send(.pong(pong), requestID: requestID)
            return nil
        default:
            break
        }
        let session: Session
        let log: DeviceLog
        switch registry.sessionLog(id) {
        case .none:
            throw .connection(.notAuthenticated)
        case .needsReload(let stale):
            guard loaded != stale.account else { throw .request(.internalError) }  // moved on again meanwhile
            registry.beginLoad(id, account: stale.account)
            pending = .load(account: stale.account, retry: frame)
            return .account(stale.account)
        case .ready(let current, let currentLog):
            (session, log) = (current, currentLog)
        }
        let fresh = loaded == session.account
        do {
            return try dispatchAuthenticated(frame, session: session, log: log, nowMs: nowMs, fresh: fresh)
        } catch {
            // Answers that depend on the cached account: with a shared store, another process
            // may have moved it on. Read it again and run the request once more first.
            guard registry.configuration.sharedStore, !fresh, error.error.dependsOnCachedAccount,
                registry.markForReload(session.account, rateLimitedAtMs: nowMs) == .marked
            else { throw error }
            registry.beginLoad(id, account: session.account)
            pending = .load(account: session.account, retry: frame)
            return .account(session.account)
        }
    }

    private mutating func dispatchAuthenticated(
        _ frame: Cloak_V1_Frame, session: Session, log: DeviceLog, nowMs: UInt64, fresh: Bool
    ) throws(Failure) -> StoreRead? {
        let requestID = frame.requestID
        let context = RequestContext(
            session: session, log: log, requestID: requestID, nowMs: nowMs, frame: frame, fresh: fresh)
        if session.isRecoveryKey {
            switch frame.body {
            case .fetchKeyEnvelopes, .appendDeviceLog, .putKeyEnvelopes, .fetchDeviceLog: break
            default: throw .request(.unexpectedFrame("a recovery session may not send \(frame.body?.name ?? "this")"))
            }
        }
        if session.isAssistant { try checkAssistantRequest(frame, context) }
        switch frame.body {
        case .subscribe(let request): return try subscribe(request, context)
        case .push(let request): return try push(request, context)
        case .fetchChangeSets(let request): return try fetchChangeSets(request, context)
        case .fetchHeads(let request): return try fetchHeads(request, context)
        case .ackCursor(let request):
            do {
                try registry.acknowledge(id, session: session, requestID: requestID, cursor: request.cursor)
            } catch { throw .request(error) }
            return nil
        case .appendDeviceLog(let request): try appendDeviceLog(request, context)
        case .putKeyEnvelopes(let request): try putKeyEnvelopes(request, context)
        case .fetchKeyEnvelopes(let request):
            pending = .envelopes(requestID: requestID)
            return .keyEnvelopes(session.account, recipient: session.device, fromEpoch: request.fromEpoch)
        case .putSnapshot(let request): try putSnapshot(request, context)
        case .fetchSnapshots(let request): return try fetchSnapshots(request, context)
        case .mailboxPut(let request): try putMailbox(request, context)
        case .putRecovery(let request): try putRecovery(request, context)
        case .recoveryEvaluate(let request): try evaluateEnrollment(request, context)
        case .resetRecoveryLockout:
            do { try registry.resetRecoveryLockout(id, session: session, requestID: requestID, nowMs: nowMs) } catch {
                throw .request(error)
            }
        case .authenticate, .register, .fetchDeviceLog, .mailboxTake, .fetchRecovery, .ping:
            break
        case .serverHello, .authResult, .error, .pushAck, .deliver, .deviceLogEntries, .keyEnvelopes, .snapshots,
            .mailboxContent, .recoveryBlob, .pong, .done, .chainHeads, .recoveryEvaluation, .accountNotice, .none:
            throw .request(.unexpectedFrame("\(frame.body?.name ?? "frame") is sent by servers"))
        }
        return nil
    }

    func send(_ body: Cloak_V1_Frame.OneOf_Body, requestID: UInt64) {
        registry.output.send(FrameCodec.encode(body, requestID: requestID), to: id)
    }

    private func releaseLoad(of waiting: Pending) {
        switch waiting {
        case .load(let account, _, _):
            registry.releaseLoad(id, account: account)
        case .register(_, let log, _):
            registry.releaseLoad(id, account: log.account)
        default:
            break
        }
    }
}

/// A failed request: the error and whether it ends the connection (PROTOCOL.md §"Errors").
struct Failure: Error {
    let error: ProtocolError
    let closes: Bool

    /// Answered with an Error frame; the connection stays open.
    static func request(_ error: ProtocolError) -> Failure { Failure(error: error, closes: false) }
    /// Answered with an Error frame, then the connection closes.
    static func connection(_ error: ProtocolError) -> Failure { Failure(error: error, closes: true) }
}

extension ProtocolError {
    /// Decided against the cached account state (snapshot heads, device-log head, quota).
    var dependsOnCachedAccount: Bool {
        switch self {
        case .staleSnapshot, .deviceLogConflict, .quotaExceeded: true
        default: false
        }
    }
}

/// What one authenticated request is checked against.
struct RequestContext: Sendable {
    let session: Session
    let log: DeviceLog
    let requestID: UInt64
    let nowMs: UInt64
    /// The request's frame (a push runs it again after a reload).
    let frame: Cloak_V1_Frame
    /// The account was read from the store for this request.
    let fresh: Bool
}

/// A request waiting for a store read.
enum Pending: Sendable {
    /// Load (or reload) an account, then run `retry` again (`attempt` counts reloads of a
    /// read another process overtook).
    case load(account: AccountID, retry: Cloak_V1_Frame, attempt: Int = 0)
    case register(requestID: UInt64, log: DeviceLog, genesis: [UInt8])
    case deviceLog(requestID: UInt64)
    case mailbox(requestID: UInt64)
    case recovery(requestID: UInt64)
    case catchUp(CatchUp)
    /// A Subscribe whose cursor and anchor the store is asked about.
    case anchor(SubscribeRequest)
    case push(PushInFlight)
    case heads(requestID: UInt64, limit: Int)
    case fetchChangeSets(requestID: UInt64)
    case envelopes(requestID: UInt64)
    case snapshots(requestID: UInt64)

    var requestID: UInt64 {
        switch self {
        case .load(_, let retry, _): retry.requestID
        case .register(let id, _, _), .deviceLog(let id), .mailbox(let id), .recovery(let id),
            .fetchChangeSets(let id), .envelopes(let id), .snapshots(let id), .heads(let id, _):
            id
        case .catchUp(let catchUp): catchUp.requestID
        case .anchor(let subscription): subscription.requestID
        case .push(let push): push.requestID
        }
    }
}
