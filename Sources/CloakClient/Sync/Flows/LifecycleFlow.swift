import CloakCrypto
import CloakProtocol

/// Identifies one run of a lifecycle flow, so its result reaches whoever started it.
@_spi(Simulation)
public struct FlowID: Hashable, Sendable, Comparable {
    let value: UInt64

    /// Orders flows by when they were started.
    public static func < (lhs: FlowID, rhs: FlowID) -> Bool { lhs.value < rhs.value }

    /// Flows the sync machine starts on its own (ending an expired assistant's access) are
    /// numbered from the top: nobody waits for them, so their end is not reported.
    var isInternal: Bool { value >= 1 << 63 }
}

/// What a finished flow produced.
@_spi(Simulation)
public enum FlowOutcome: Sendable {
    /// The flow did what it was for.
    case completed
    /// An existing device offered the account to an invitation: the code to compare, then
    /// ``ClientEngine/completeLink(_:codesMatch:pollMillis:)``.
    case linkOffer(LinkOffer)
    /// A new device received and verified an offer: the code to compare, then
    /// ``ClientEngine/confirmLink(_:codesMatch:pollMillis:)``.
    case pendingLink(PendingLink)
}

/// What a connection must be before a flow can run on it.
enum FlowAccess: Equatable {
    /// No device session: the device has no account yet (create, link, recover).
    case anonymous
    /// Authenticated as this device (accept a link, remove a device, set up recovery).
    case device
}

/// A reply (or the server's error) to a flow's request.
enum FlowReply {
    case body(Cloak_V1_Frame.OneOf_Body)
    case error(ProtocolError)
}

/// What a flow asks for next.
enum FlowStep {
    /// Send this request; its reply comes back through ``LifecycleFlow/handle(_:core:output:)``.
    case request(Cloak_V1_Frame.OneOf_Body)
    /// Authenticate this connection as `device` with `key` (the reply is the AuthResult).
    case authenticate(DeviceID, Ed25519PrivateKey)
    /// Fetch `account`'s device log before authenticating, proving with this client's key
    /// over the connection's nonce that it is listed (a member or a granted assistant).
    case fetchLogAsListed(AccountID)
    /// Nothing to send until this time (polling); then ``LifecycleFlow/resume(core:output:)``.
    case wait(until: UInt64)
    /// The flow ended.
    case finish(Result<FlowOutcome, ClientError>)
}

/// One of the account's lifecycle flows (PROTOCOL.md §17 and §21–§22) as a small synchronous
/// state machine: the ``SyncMachine`` runs it over its connection, one request at a time,
/// feeding it each reply. Flows do their local work (preparing entries, verifying bundles,
/// storing the account) through the core they are handed.
protocol LifecycleFlow {
    /// The session the flow needs.
    var access: FlowAccess { get }
    /// Whether a dropped connection only pauses the flow (it resumes on the next connection)
    /// rather than failing it.
    var survivesReconnect: Bool { get }
    /// The first step (also called again after a reconnect, for flows that survive one).
    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep
    /// The reply to the last request.
    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep
    /// The time a ``FlowStep/wait(until:)`` named has come.
    mutating func resume(core: ClientCore, output: inout CoreOutput) -> FlowStep
}

extension LifecycleFlow {
    var survivesReconnect: Bool { false }
    mutating func resume(core: ClientCore, output: inout CoreOutput) -> FlowStep { start(core: core, output: &output) }
}

/// The flows waiting to run and the one running, in the order they were started.
struct FlowQueue {
    struct Entry {
        let id: FlowID
        var flow: any LifecycleFlow
        /// The running flow's request in flight.
        var request: UInt64?
        /// The running flow waits until this time.
        var waitUntil: UInt64?
        /// The flow has begun (its `start` ran on some connection).
        var started = false
        /// The request in flight, kept to send again when the server answers INTERNAL.
        var sent: Cloak_V1_Frame.OneOf_Body?
        /// A request to send again once `waitUntil` has come (after INTERNAL).
        var resend: Cloak_V1_Frame.OneOf_Body?
        /// How many times this flow's requests were sent again after INTERNAL.
        var internalRetries = 0
    }

    private(set) var entries: [Entry] = []

    var isEmpty: Bool { entries.isEmpty }
    var current: Entry? { entries.first }
    var wakeAt: UInt64? { entries.first?.waitUntil }

    mutating func append(_ entry: Entry) { entries.append(entry) }

    mutating func updateCurrent(_ body: (inout Entry) -> Void) {
        guard !entries.isEmpty else { return }
        body(&entries[0])
    }

    /// Removes the running flow.
    mutating func popCurrent() -> Entry? { entries.isEmpty ? nil : entries.removeFirst() }

    /// Fails every flow (sync stopped, or refused).
    mutating func failAll(_ error: ClientError) -> [SyncEffect] {
        defer { entries = [] }
        return entries.map { .flowFinished($0.id, .failure(error)) }
    }

    /// The connection dropped: the running flow fails unless it survives a reconnect (and one
    /// was made at all); flows that never started wait for the next connection, unless no
    /// connection could be made (the server is unreachable: say so at once).
    mutating func connectionLost(neverConnected: Bool) -> [SyncEffect] {
        guard let first = entries.first else { return [] }
        if neverConnected { return failAll(.notConnected) }
        guard first.started else { return [] }
        if first.flow.survivesReconnect {
            entries[0].request = nil
            entries[0].waitUntil = nil
            entries[0].resend = nil
            entries[0].started = false
            return []
        }
        entries.removeFirst()
        return [.flowFinished(first.id, .failure(.notConnected))]
    }
}

/// One request answered with Done (a device ending a recovery lockout).
struct SimpleRequestFlow: LifecycleFlow {
    let body: Cloak_V1_Frame.OneOf_Body
    var access: FlowAccess { .device }

    init(_ body: Cloak_V1_Frame.OneOf_Body) { self.body = body }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep { .request(body) }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard case .body(.done) = reply else { return LogAppend.fail(reply, "Done") }
        return .finish(.success(.completed))
    }
}
