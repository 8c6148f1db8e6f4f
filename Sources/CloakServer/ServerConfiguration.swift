public import CloakProtocol

/// Everything the sync server enforces, in one value passed at construction (no globals).
///
/// ```swift
/// var configuration = ServerConfiguration()
/// configuration.limits.maxFrameBytes = 1 << 20
/// configuration.handshakeTimeoutMs = 5_000
/// let registry = SyncRegistry(configuration: configuration, logger: logger)
/// ```
///
/// The protocol limits (``limits``) are announced to clients in `ServerHello`; the rest are
/// server policy. Every limit answers with a typed error code (PROTOCOL.md §"Errors").
public struct ServerConfiguration: Sendable, Equatable {
    /// Frame, push, change-set, rate, quota and batch limits, announced in `ServerHello`.
    public var limits: ProtocolLimits
    /// Live connections one account may hold (all devices together).
    public var maxConnectionsPerAccount: Int
    /// A connection that has not authenticated by then is closed with HANDSHAKE_TIMEOUT.
    public var handshakeTimeoutMs: UInt64
    /// A connection that sends no frame for this long is closed with IDLE_TIMEOUT.
    public var idleTimeoutMs: UInt64
    /// Bytes queued for one connection before it is closed with SLOW_CONSUMER.
    public var maxOutboundQueueBytes: Int
    /// Recovery-key authentications per account per ``recoveryWindowMs``.
    public var maxRecoveryAuthenticationsPerWindow: Int
    /// Unauthenticated recovery-blob fetches per account per ``recoveryWindowMs``.
    public var maxRecoveryFetchesPerWindow: Int
    /// The sliding window of both recovery rate limits.
    public var recoveryWindowMs: UInt64
    /// Upper bound of a pairing mailbox's lifetime (PROTOCOL.md: at most 600 s).
    public var maxMailboxTTLSeconds: UInt32
    /// Most conversation ids in one Subscribe or FetchSnapshots filter.
    public var maxConversationFilter: Int
    /// Whether a push's change-set signatures are checked on arrival (PROTOCOL.md §19 step 5).
    /// Off by default: receivers verify every signature before applying anything (§9), so
    /// integrity never rests on it, and one Ed25519 verification costs about twice everything
    /// else the server does for a change set. Off, a badly signed change set from a buggy author
    /// is stored and its chain position stays unreadable (§19 step 5).
    public var verifyChangeSetSignatures: Bool
    /// Whether other server processes write to the same store (PostgreSQL with several
    /// `cloak-server` processes). Then every commit carries the version of each account it
    /// writes and a commit built on a stale copy of an account writes nothing for it (its
    /// requests get INTERNAL and the account reloads); a GAP or FORK is only answered after a
    /// fresh read of the account; and change sets other processes commit are read from the
    /// store and fanned out when ``SyncRegistry/remoteCommit(_:)`` reports them.
    public var sharedStore: Bool
    /// Open connections this process accepts in all; more are answered TOO_MANY_CONNECTIONS
    /// and closed (unlimited by default; `cloak-server` sets an operator default).
    public var maxConnections: Int
    /// Open connections from one client address; more are answered TOO_MANY_CONNECTIONS.
    /// Connections the adapter gives no address (in-process tests) are not counted per address.
    public var maxConnectionsPerAddress: Int
    /// Accounts one client address may register per ``registrationWindowMs`` (RATE_LIMITED).
    public var maxRegistrationsPerAddress: Int
    /// Accounts all clients together may register per ``registrationWindowMs`` (RATE_LIMITED).
    public var maxRegistrations: Int
    /// The sliding window of both registration limits.
    public var registrationWindowMs: UInt64
    /// Bytes all accounts together may store in this process's view of the store: a write that
    /// would pass it is QUOTA_EXCEEDED (unlimited by default). The adapter tells the registry
    /// the store's total (``SyncRegistry/setTotalStoredBytes(_:)``) at start and now and then.
    public var maxTotalStoredBytes: Int64
    /// The recovery (OPRF) keys, held apart from the database; nil: passphrase recovery is not
    /// offered (RECOVERY_UNAVAILABLE), recovery words still work.
    public var recoveryKeys: RecoveryKeySet?
    /// Counted evaluations (guesses) after which an account's passphrase recovery locks.
    public var recoveryFailuresBeforeLockout: UInt32
    /// The first lockout; each further failure doubles it, up to ``recoveryLockoutMaxMs``.
    public var recoveryLockoutMs: UInt64
    /// The longest lockout.
    public var recoveryLockoutMaxMs: UInt64
    /// Recovery evaluations one client address may ask for per ``recoveryWindowMs``, over all
    /// accounts (RATE_LIMITED): stops one address spraying guesses across accounts.
    public var maxRecoveryEvaluationsPerAddress: Int
    /// Accounts whose stand-in guess counts (no passphrase, or no account, PROTOCOL.md §22) are
    /// kept in memory at once; beyond it the one guessed at longest ago is forgotten.
    public var maxRecoveryStandIns = 100_000
    /// Connections that have not authenticated, in all and per client address: more are
    /// answered TOO_MANY_CONNECTIONS instead of ServerHello (unlimited by default).
    public var maxUnauthenticatedConnections: Int
    /// See ``maxUnauthenticatedConnections``.
    public var maxUnauthenticatedConnectionsPerAddress: Int
    /// Largest `MailboxPut` payload before authentication (a new device's pairing answer).
    public var maxAnonymousMailboxBytes: Int
    /// `MailboxPut`s before authentication one client address may send per ``recoveryWindowMs``.
    public var maxAnonymousMailboxPutsPerAddress: Int

    /// Cloak's defaults: the ``ProtocolLimits`` defaults, 64 connections per account, a 30 s
    /// handshake and 120 s idle timeout (clients ping every 30 s), 8 MiB of queued output,
    /// 5 recovery authentications and 20 recovery fetches or evaluations per account per
    /// 10 minutes, a recovery lockout after 10 counted guesses (1 hour, doubling per guess, at
    /// most 7 days), 30 recovery evaluations and 30 pre-authentication mailbox puts of at most
    /// 256 bytes per client address per 10 minutes, no recovery keys, no change-set signature
    /// checks on the server, and no process-wide caps (connections, unauthenticated connections,
    /// registrations, total storage): those are the operator's to set (`cloak-server` does).
    public init(
        limits: ProtocolLimits = ProtocolLimits(),
        maxConnectionsPerAccount: Int = 64,
        handshakeTimeoutMs: UInt64 = 30_000,
        idleTimeoutMs: UInt64 = 120_000,
        maxOutboundQueueBytes: Int = 8 << 20,
        maxRecoveryAuthenticationsPerWindow: Int = 5,
        maxRecoveryFetchesPerWindow: Int = 20,
        recoveryWindowMs: UInt64 = 600_000,
        maxMailboxTTLSeconds: UInt32 = 600,
        maxConversationFilter: Int = 10_000,
        verifyChangeSetSignatures: Bool = false,
        sharedStore: Bool = false,
        maxConnections: Int = .max,
        maxConnectionsPerAddress: Int = .max,
        maxRegistrationsPerAddress: Int = .max,
        maxRegistrations: Int = .max,
        registrationWindowMs: UInt64 = 3_600_000,
        maxTotalStoredBytes: Int64 = .max,
        recoveryKeys: RecoveryKeySet? = nil,
        recoveryFailuresBeforeLockout: UInt32 = 10,
        recoveryLockoutMs: UInt64 = 3_600_000,
        recoveryLockoutMaxMs: UInt64 = 7 * 86_400_000,
        maxRecoveryEvaluationsPerAddress: Int = 30,
        maxUnauthenticatedConnections: Int = .max,
        maxUnauthenticatedConnectionsPerAddress: Int = .max,
        maxAnonymousMailboxBytes: Int = 256,
        maxAnonymousMailboxPutsPerAddress: Int = 30
    ) {
        self.limits = limits
        self.maxConnectionsPerAccount = maxConnectionsPerAccount
        self.handshakeTimeoutMs = handshakeTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
        self.maxOutboundQueueBytes = maxOutboundQueueBytes
        self.maxRecoveryAuthenticationsPerWindow = maxRecoveryAuthenticationsPerWindow
        self.maxRecoveryFetchesPerWindow = maxRecoveryFetchesPerWindow
        self.recoveryWindowMs = recoveryWindowMs
        self.maxMailboxTTLSeconds = maxMailboxTTLSeconds
        self.maxConversationFilter = maxConversationFilter
        self.verifyChangeSetSignatures = verifyChangeSetSignatures
        self.sharedStore = sharedStore
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.maxRegistrationsPerAddress = maxRegistrationsPerAddress
        self.maxRegistrations = maxRegistrations
        self.registrationWindowMs = registrationWindowMs
        self.maxTotalStoredBytes = maxTotalStoredBytes
        self.recoveryKeys = recoveryKeys
        self.recoveryFailuresBeforeLockout = recoveryFailuresBeforeLockout
        self.recoveryLockoutMs = recoveryLockoutMs
        self.recoveryLockoutMaxMs = recoveryLockoutMaxMs
        self.maxRecoveryEvaluationsPerAddress = maxRecoveryEvaluationsPerAddress
        self.maxUnauthenticatedConnections = maxUnauthenticatedConnections
        self.maxUnauthenticatedConnectionsPerAddress = maxUnauthenticatedConnectionsPerAddress
        self.maxAnonymousMailboxBytes = maxAnonymousMailboxBytes
        self.maxAnonymousMailboxPutsPerAddress = maxAnonymousMailboxPutsPerAddress
    }

    /// Payload room in one outgoing frame after the frame's own fields (request id, tags,
    /// lengths): deliveries and lists are cut to fit ``ProtocolLimits/maxFrameBytes``.
    var framePayloadBudget: Int { max(limits.maxFrameBytes - 256, 1024) }
}
