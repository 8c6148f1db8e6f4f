import CloakClient
import CloakCRDT
import CloakProtocol
import Synchronization

/// An operation a device's API call accepted: what the durability check looks for at the end.
struct AcceptedOperation: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case create, append, stream, branch, edit, react, rename, delete
    }

    let kind: Kind
    let account: Int
    let device: Int
    let conversation: ConversationID
    /// The message created, or the one edited, reacted to or deleted.
    let message: MessageID?
    /// The canary (or reaction token) the operation left.
    let token: String
    /// The emoji of a reaction.
    let emoji: String?
}

/// Everything the live run's tasks record, behind one lock: the render tracker, operations
/// accepted and refused, alarms, and the canaries written. Times are milliseconds since the
/// run started, read from one monotonic clock.
final class LiveRecorder: Sendable {
    struct State {
        var tracker = RenderTracker()
        /// Operations accepted per second of the run.
        var accepted = RateSeries()
        /// Operations accepted, by kind.
        var operations = Tally()
        /// API calls refused, by error code.
        var apiErrors = Tally()
        /// Errors the server answered to background sync requests, by code (from the log).
        var serverErrors = Tally()
        /// Security events the devices raised, by kind (an honest server causes none).
        var alarms = Tally()
        /// Sample alarm details, for the report.
        var alarmDetails: [String] = []
        /// Operations the schedule meant to issue but whose device was still busy.
        var skipped = 0
        /// Operations handed to devices.
        var issued = 0
        var acceptedOperations: [AcceptedOperation] = []
        var nextCanary = 0
        /// Log lines that carried a canary (must stay empty).
        var logLeaks: [String] = []
    }

    let state = Mutex(State())
    let clock = ContinuousClock()
    let start: ContinuousClock.Instant
    let run: String

    init(run: String) {
        start = clock.now
        self.run = run
    }

    /// Milliseconds since the run started.
    func now() -> Double {
        let elapsed = clock.now - start
        return Double(elapsed.components.seconds) * 1_000 + Double(elapsed.components.attoseconds) / 1e15
    }

    /// A fresh canary for one operation.
    func canary() -> String {
        state.withLock { s in
            defer { s.nextCanary += 1 }
            return RenderTokens.canary(run: run, number: s.nextCanary)
        }
    }

    /// Every canary handed out so far.
    var canaries: [String] {
        let count = state.withLock { $0.nextCanary }
        return (0..<count).map { RenderTokens.canary(run: run, number: $0) }
    }

    func expect(token: String, kind: AcceptedOperation.Kind, origin: Int, others: [Int], startMillis: Double) {
        state.withLock { $0.tracker.expect(token: token, kind: kind.rawValue, origin: origin, others: others, startMillis: startMillis) }
    }

    func sighted(_ tokens: Set<String>, device: Int) {
        guard !tokens.isEmpty else { return }
        let time = now()
        state.withLock { $0.tracker.sighted(tokens, device: device, atMillis: time) }
    }

    func accepted(_ operation: AcceptedOperation) {
        let time = now()
        state.withLock { s in
            s.accepted.record(atMillis: time)
            s.operations.add(operation.kind.rawValue)
            s.acceptedOperations.append(operation)
        }
    }

    func refused(_ kind: AcceptedOperation.Kind, token: String?, error: ClientError) {
        refused(kind, token: token, code: LiveErrorCode.name(of: error))
    }

    /// An API call failed with `code` (its token will never render).
    func refused(_ kind: AcceptedOperation.Kind, token: String?, code: String) {
        state.withLock { s in
            if let token { s.tracker.cancel(token: token) }
            s.apiErrors.add(code)
        }
    }

    func alarm(_ event: SecurityEvent, device: String) {
        state.withLock { s in
            s.alarms.add(event.kind.rawValue)
            if s.alarmDetails.count < 20 { s.alarmDetails.append("\(device): \(event.kind.rawValue): \(event.detail)") }
        }
    }

    func serverError(code: String) {
        state.withLock { $0.serverErrors.add(code) }
    }

    func logLeak(_ line: String) {
        state.withLock { s in
            if s.logLeaks.count < 20 { s.logLeaks.append(line) }
        }
    }

    func issued() { state.withLock { $0.issued += 1 } }

    func skipped() { state.withLock { $0.skipped += 1 } }

    /// A consistent copy of everything recorded.
    var snapshot: State { state.withLock { $0 } }
}

/// Names for error codes: a server refusal by its wire name (`RATE_LIMITED`), anything else by
/// what went wrong on the client (`client:timeout`).
enum LiveErrorCode {
    static func name(of error: ClientError) -> String {
        switch error {
        case .server(let reason): wireName(reason.wireCode)
        case .storage: "client:storage"
        case .noAccount: "client:noAccount"
        case .alreadyInitialized: "client:alreadyInitialized"
        case .notConnected: "client:notConnected"
        case .timeout: "client:timeout"
        case .unknownConversation: "client:unknownConversation"
        case .invalidEdit: "client:invalidEdit"
        case .deviceLog: "client:deviceLog"
        case .pairing: "client:pairing"
        case .pairingReused: "client:pairingReused"
        case .pairingNotCompleted: "client:pairingNotCompleted"
        case .recoveryWords: "client:recoveryWords"
        case .wrongRecoverySecret: "client:wrongRecoverySecret"
        case .noRecoveryKey: "client:noRecoveryKey"
        case .crypto: "client:crypto"
        case .unknownDevice: "client:unknownDevice"
        case .removedFromAccount: "client:removedFromAccount"
        case .missingEpochKey: "client:missingEpochKey"
        case .linkDeclined: "client:linkDeclined"
        case .weakPassphrase: "client:weakPassphrase"
        case .recoveryAlreadySet: "client:recoveryAlreadySet"
        case .recoveryLocked: "client:recoveryLocked"
        case .recoveryUnavailable: "client:recoveryUnavailable"
        case .recoveryInterrupted: "client:recoveryInterrupted"
        case .assistantInvitation: "client:assistantInvitation"
        case .unknownAssistant: "client:unknownAssistant"
        case .assistantNotGranted: "client:assistantNotGranted"
        case .notPermitted: "client:notPermitted"
        }
    }

    /// `rateLimited` → `RATE_LIMITED`, as PROTOCOL.md's error table names it.
    static func wireName(_ code: Cloak_V1_ErrorCode) -> String {
        screamingSnakeCase("\(code)")
    }

    static func screamingSnakeCase(_ camel: String) -> String {
        var out = ""
        for character in camel {
            if character.isUppercase, !out.isEmpty { out.append("_") }
            out.append(contentsOf: character.uppercased())
        }
        return out
    }
}
