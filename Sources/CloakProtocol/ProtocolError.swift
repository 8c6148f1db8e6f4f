/// Every way a frame, record or construction can be rejected. Each case maps to one stable
/// wire code (``wireCode``; PROTOCOL.md §"Errors" is the table) and says which check failed.
/// Messages never contain key material or payload bytes.
///
/// ```swift
/// do { let frame = try FrameCodec.decode(bytes, limits: limits) }
/// catch { send(.error(code: error.wireCode, message: error.message)) }
/// ```
public enum ProtocolError: Error, Equatable, Sendable {
    /// Bytes are not a valid protobuf `Frame`, or no known body is set.
    case malformedFrame(String)
    /// A frame is larger than the limit (checked before parsing).
    case frameTooLarge(size: Int, limit: Int)
    /// The peer speaks no version we support.
    case unsupportedVersion(UInt32)
    /// A request that needs authentication arrived before it.
    case notAuthenticated
    /// The authentication signature did not verify.
    case authFailed
    /// The account id is not known to the server.
    case unknownAccount
    /// The device is not (or no longer) active in the account's device log.
    case deviceNotActive
    /// A signature on a record did not verify.
    case badSignature(String)
    /// A field has the wrong length or an impossible value.
    case invalidField(String)
    /// A change set's author is not the authenticated device.
    case wrongAuthor
    /// A change set's `seq` skips ahead of the author's chain.
    case gap(expectedSeq: UInt64, got: UInt64)
    /// A different change set already holds this (author, conversation, seq), or `prev_hash`
    /// does not match the stored chain.
    case fork(String)
    /// More change sets in one push than allowed.
    case tooManyChangeSets(count: Int, limit: Int)
    /// One change set is larger than allowed.
    case changeSetTooLarge(size: Int, limit: Int)
    /// The device pushes faster than allowed.
    case rateLimited
    /// The account's stored bytes would exceed its quota.
    case quotaExceeded
    /// The account already has the maximum number of connections.
    case tooManyConnections
    /// No authentication within the handshake timeout.
    case handshakeTimeout
    /// No frame within the idle timeout.
    case idleTimeout
    /// The connection did not read its deliveries fast enough.
    case slowConsumer
    /// Register for an account that exists.
    case accountExists
    /// A device-log entry breaks the chain rules.
    case invalidDeviceLog(String)
    /// A device-log append lost a race: its `prev_hash` is not the current head.
    case deviceLogConflict
    /// The requested record does not exist.
    case notFound
    /// A frame that is valid but not allowed in the connection's current state.
    case unexpectedFrame(String)
    /// The server is shutting down.
    case shuttingDown
    /// The server failed internally (storage unavailable); nothing was lost, retry later.
    case internalError
    /// A snapshot does not extend the newest stored snapshot's lineage.
    case staleSnapshot
    /// A change set was written under a device-log head older than the newest removal, so it
    /// may be encrypted under a key the removed device holds (ADV-08): re-seal and push again.
    case staleDeviceLog
    /// A Subscribe's `after_cursor` is beyond the account's head, or the change set stored at
    /// it does not have the subscriber's anchor hash: the server lost data (a restored backup)
    /// or shows this device another history (PROTOCOL.md §20; ADV-44).
    case cursorMismatch(String)
    /// A removal's cut-offs do not name the newest change set the server stores of the removed
    /// device in every conversation it wrote in: the remover must see them all first, or what
    /// others built on them would be dropped with them (PROTOCOL.md §10).
    case staleCutoffs(String)
    /// The server's operator blocked the account: its devices may not authenticate.
    case accountBlocked
    /// The account's passphrase recovery is locked after too many guesses, for this many more
    /// milliseconds (PROTOCOL.md §22; ADV-46). Its devices were told and can end it.
    case recoveryLocked(retryAfterMs: UInt64)
    /// The server holds no recovery (OPRF) key: passphrase recovery is not offered there.
    case recoveryUnavailable
    /// An assistant named a conversation outside its scope, or a device sealed a conversation
    /// key to an assistant for a conversation outside the assistant's scope (PROTOCOL.md §29).
    case outOfScope(String)
    /// An assistant session sent a request assistants may not make (PROTOCOL.md §29).
    case notPermitted(String)
    /// The assistant's grant has expired by the server's clock.
    case grantExpired

    /// The stable wire code.
    public var wireCode: Cloak_V1_ErrorCode {
        switch self {
        case .malformedFrame: .malformedFrame
        case .frameTooLarge: .frameTooLarge
        case .unsupportedVersion: .unsupportedVersion
        case .notAuthenticated: .notAuthenticated
        case .authFailed: .authFailed
        case .unknownAccount: .unknownAccount
        case .deviceNotActive: .deviceNotActive
        case .badSignature: .badSignature
        case .invalidField: .invalidField
        case .wrongAuthor: .wrongAuthor
        case .gap: .gap
        case .fork: .fork
        case .tooManyChangeSets: .tooManyChangeSets
        case .changeSetTooLarge: .changeSetTooLarge
        case .rateLimited: .rateLimited
        case .quotaExceeded: .quotaExceeded
        case .tooManyConnections: .tooManyConnections
        case .handshakeTimeout: .handshakeTimeout
        case .idleTimeout: .idleTimeout
        case .slowConsumer: .slowConsumer
        case .accountExists: .accountExists
        case .invalidDeviceLog: .invalidDeviceLog
        case .deviceLogConflict: .deviceLogConflict
        case .notFound: .notFound
        case .unexpectedFrame: .unexpectedFrame
        case .shuttingDown: .shuttingDown
        case .internalError: .internal
        case .staleSnapshot: .staleSnapshot
        case .staleDeviceLog: .staleDeviceLog
        case .cursorMismatch: .cursorMismatch
        case .staleCutoffs: .staleCutoffs
        case .accountBlocked: .accountBlocked
        case .recoveryLocked: .recoveryLocked
        case .recoveryUnavailable: .recoveryUnavailable
        case .outOfScope: .outOfScope
        case .notPermitted: .notPermitted
        case .grantExpired: .grantExpired
        }
    }

    /// When a retry may succeed, in ms from now (RATE_LIMITED and RECOVERY_LOCKED; 0: not said).
    public var retryAfterMs: UInt64 {
        if case .recoveryLocked(let after) = self { return after }
        return 0
    }

    /// Whether the connection closes after this error (PROTOCOL.md §"Errors").
    public var closesConnection: Bool {
        switch self {
        case .malformedFrame, .frameTooLarge, .unsupportedVersion, .notAuthenticated, .authFailed,
            .unknownAccount, .deviceNotActive, .tooManyConnections, .handshakeTimeout, .idleTimeout,
            .slowConsumer, .shuttingDown, .accountBlocked, .grantExpired:
            true
        default:
            false
        }
    }

    /// A human-readable message without secrets.
    public var message: String {
        switch self {
        case .malformedFrame(let why): "malformed frame: \(why)"
        case .frameTooLarge(let size, let limit): "frame of \(size) bytes exceeds the limit of \(limit)"
        case .unsupportedVersion(let v): "unsupported protocol version \(v)"
        case .notAuthenticated: "authenticate first"
        case .authFailed: "authentication signature did not verify"
        case .unknownAccount: "unknown account"
        case .deviceNotActive: "device is not active in the account's device log"
        case .badSignature(let what): "bad signature on \(what)"
        case .invalidField(let why): "invalid field: \(why)"
        case .wrongAuthor: "change set author is not the authenticated device"
        case .gap(let expected, let got): "gap: expected seq \(expected), got \(got)"
        case .fork(let why): "fork: \(why)"
        case .tooManyChangeSets(let count, let limit): "\(count) change sets in one push exceed the limit of \(limit)"
        case .changeSetTooLarge(let size, let limit): "change set of \(size) bytes exceeds the limit of \(limit)"
        case .rateLimited: "too many pushes per second"
        case .quotaExceeded: "account storage quota exceeded"
        case .tooManyConnections: "too many connections for this account"
        case .handshakeTimeout: "no authentication within the handshake timeout"
        case .idleTimeout: "idle timeout"
        case .slowConsumer: "connection did not keep up with deliveries"
        case .accountExists: "account already exists"
        case .invalidDeviceLog(let why): "invalid device log entry: \(why)"
        case .deviceLogConflict: "device log head moved; fetch and retry"
        case .notFound: "not found"
        case .unexpectedFrame(let why): "unexpected frame: \(why)"
        case .shuttingDown: "server is shutting down"
        case .internalError: "internal server error; retry later"
        case .staleSnapshot: "snapshot does not extend the newest snapshot"
        case .staleDeviceLog: "written under a device-log head older than the newest removal; re-seal"
        case .cursorMismatch(let why): "cursor mismatch: \(why)"
        case .staleCutoffs(let why): "stale removal cut-offs: \(why)"
        case .accountBlocked: "this account is blocked by the server's operator"
        case .recoveryLocked(let after):
            "recovery is locked after too many attempts; try again in \(max(1, (after + 59_999) / 60_000)) minutes"
        case .recoveryUnavailable: "this server does not offer passphrase recovery (no recovery key configured)"
        case .outOfScope(let why): "outside the assistant's scope: \(why)"
        case .notPermitted(let why): "not permitted to an assistant: \(why)"
        case .grantExpired: "the assistant's grant has expired"
        }
    }
}

extension ProtocolError {
    /// Rebuilds an error from a received wire code (the detail is the peer's message).
    public init(wireCode: Cloak_V1_ErrorCode, message: String, retryAfterMs: UInt64 = 0) {
        switch wireCode {
        case .frameTooLarge: self = .frameTooLarge(size: 0, limit: 0)
        case .unsupportedVersion: self = .unsupportedVersion(0)
        case .notAuthenticated: self = .notAuthenticated
        case .authFailed: self = .authFailed
        case .unknownAccount: self = .unknownAccount
        case .deviceNotActive: self = .deviceNotActive
        case .badSignature: self = .badSignature(message)
        case .invalidField: self = .invalidField(message)
        case .wrongAuthor: self = .wrongAuthor
        case .gap: self = .gap(expectedSeq: 0, got: 0)
        case .fork: self = .fork(message)
        case .tooManyChangeSets: self = .tooManyChangeSets(count: 0, limit: 0)
        case .changeSetTooLarge: self = .changeSetTooLarge(size: 0, limit: 0)
        case .rateLimited: self = .rateLimited
        case .quotaExceeded: self = .quotaExceeded
        case .tooManyConnections: self = .tooManyConnections
        case .handshakeTimeout: self = .handshakeTimeout
        case .idleTimeout: self = .idleTimeout
        case .slowConsumer: self = .slowConsumer
        case .accountExists: self = .accountExists
        case .invalidDeviceLog: self = .invalidDeviceLog(message)
        case .deviceLogConflict: self = .deviceLogConflict
        case .notFound: self = .notFound
        case .unexpectedFrame: self = .unexpectedFrame(message)
        case .shuttingDown: self = .shuttingDown
        case .internal: self = .internalError
        case .staleSnapshot: self = .staleSnapshot
        case .staleDeviceLog: self = .staleDeviceLog
        case .cursorMismatch: self = .cursorMismatch(message)
        case .staleCutoffs: self = .staleCutoffs(message)
        case .accountBlocked: self = .accountBlocked
        case .recoveryLocked: self = .recoveryLocked(retryAfterMs: retryAfterMs)
        case .recoveryUnavailable: self = .recoveryUnavailable
        case .outOfScope: self = .outOfScope(message)
        case .notPermitted: self = .notPermitted(message)
        case .grantExpired: self = .grantExpired
        case .malformedFrame, .unspecified, .UNRECOGNIZED: self = .malformedFrame(message)
        }
    }
}
