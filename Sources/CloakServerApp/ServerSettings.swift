import CloakProtocol
import CloakServer
public import CloakServerHTTP
public import Logging

/// How log lines are written.
public enum LogFormat: String, Sendable {
    /// swift-log's text lines on standard error.
    case text
    /// One JSON object per line on standard error (``JSONLogHandler``).
    case json
}

/// What every command needs: where the data lives and how to log.
public struct StoreSettings: Sendable {
    /// `sqlite:PATH`, `postgres://…` or `memory:`.
    public var database: String
    /// A file with the PostgreSQL password, if any.
    public var passwordFile: String?
    /// The log level.
    public var logLevel: Logger.Level
    /// The log format.
    public var logFormat: LogFormat
    /// Create a SQLite database that does not exist yet (otherwise a missing file is an error).
    public var create: Bool

    /// Reads the store settings from flags, the environment and a config file.
    public static func load(
        flags: [String: String], create: Bool, environment: [String: String], configFile: String?
    ) async throws(ConfigurationError) -> StoreSettings {
        let resolved = try await SettingsLoader.resolve(Setting.store, flags: flags, environment: environment, configFile: configFile)
        let checker = SettingsChecker(Setting.store, resolved)
        guard checker.problems.isEmpty else { throw ConfigurationError(checker.problems) }
        return StoreSettings(checker, create: create)
    }

    init(_ checker: SettingsChecker, create: Bool) {
        database = checker.text("database") ?? "sqlite:./cloak-data/cloak.sqlite"
        passwordFile = checker.text("databasePasswordFile")
        logLevel = checker.text("logLevel").flatMap(Logger.Level.init(rawValue:)) ?? .info
        logFormat = checker.text("logFormat").flatMap(LogFormat.init(rawValue:)) ?? .text
        self.create = create
    }
}

/// Everything `cloak-server serve` runs with, checked.
///
/// ```swift
/// let settings = try await ServerSettings.load(flags: flags, create: false,
///                                              environment: ProcessInfo.processInfo.environment, configFile: path)
/// let server = CloakHTTPServer(configuration: settings.http, store: store, logger: logger)
/// ```
public struct ServerSettings: Sendable {
    /// The store and logging.
    public var store: StoreSettings
    /// Address, TLS, limits and policies.
    public var http: HTTPServerConfiguration

    /// Reads, checks and combines every setting; all mistakes at once.
    public static func load(
        flags: [String: String], create: Bool, environment: [String: String], configFile: String?
    ) async throws(ConfigurationError) -> ServerSettings {
        let resolved = try await SettingsLoader.resolve(Setting.all, flags: flags, environment: environment, configFile: configFile)
        var checker = SettingsChecker(Setting.all, resolved)
        var http = Self.http(&checker)
        http.sync.recoveryKeys = RecoveryKeyLoading.load(&checker, environment: environment)
        guard checker.problems.isEmpty else { throw ConfigurationError(checker.problems) }
        return ServerSettings(store: StoreSettings(checker, create: create), http: http)
    }

    private static func http(_ c: inout SettingsChecker) -> HTTPServerConfiguration {
        var sync = ServerConfiguration()
        let defaults = ServerConfiguration()
        sync.limits.maxFrameBytes = Int(c.bytes("maxFrameBytes", Int64(defaults.limits.maxFrameBytes)))
        sync.limits.maxChangeSetsPerPush = c.number("maxChangeSetsPerPush", defaults.limits.maxChangeSetsPerPush)
        sync.limits.maxChangeSetBytes = Int(c.bytes("maxChangeSetBytes", Int64(defaults.limits.maxChangeSetBytes)))
        sync.limits.maxPushesPerSecond = c.number("maxPushesPerSecond", defaults.limits.maxPushesPerSecond)
        sync.limits.maxAccountBytes = c.bytes("maxAccountBytes", defaults.limits.maxAccountBytes)
        sync.limits.maxCatchUpBatch = c.number("maxCatchUpBatch", defaults.limits.maxCatchUpBatch)
        sync.limits.maxMailboxBytes = Int(c.bytes("maxMailboxBytes", Int64(defaults.limits.maxMailboxBytes)))
        sync.maxTotalStoredBytes = c.bytes("maxTotalBytes", .max)
        sync.maxMailboxTTLSeconds = UInt32(clamping: (c.milliseconds("mailboxTtl") ?? 600_000) / 1000)
        sync.maxConnections = c.number("maxConnections", 20_000)
        sync.maxConnectionsPerAddress = c.number("maxConnectionsPerAddress", 200)
        sync.maxConnectionsPerAccount = c.number("maxConnectionsPerAccount", defaults.maxConnectionsPerAccount)
        sync.maxRegistrationsPerAddress = c.number("registrationsPerAddress", 10)
        sync.maxRegistrations = c.number("registrations", 1_000)
        sync.registrationWindowMs = c.milliseconds("registrationWindow") ?? 3_600_000
        sync.maxRecoveryAuthenticationsPerWindow = c.number("recoveryAuthentications", defaults.maxRecoveryAuthenticationsPerWindow)
        sync.maxRecoveryFetchesPerWindow = c.number("recoveryFetches", defaults.maxRecoveryFetchesPerWindow)
        sync.recoveryWindowMs = c.milliseconds("recoveryWindow") ?? defaults.recoveryWindowMs
        sync.recoveryFailuresBeforeLockout = UInt32(clamping: c.number("recoveryLockoutAfter", 10))
        sync.recoveryLockoutMs = c.milliseconds("recoveryLockout") ?? defaults.recoveryLockoutMs
        sync.recoveryLockoutMaxMs = c.milliseconds("recoveryLockoutMax") ?? defaults.recoveryLockoutMaxMs
        sync.maxRecoveryEvaluationsPerAddress = c.number("recoveryEvaluationsPerAddress", 30)
        sync.maxUnauthenticatedConnections = c.number("maxUnauthenticatedConnections", 2_000)
        sync.maxUnauthenticatedConnectionsPerAddress = c.number("maxUnauthenticatedConnectionsPerAddress", 20)
        sync.handshakeTimeoutMs = c.milliseconds("handshakeTimeout") ?? defaults.handshakeTimeoutMs
        sync.idleTimeoutMs = c.milliseconds("idleTimeout") ?? defaults.idleTimeoutMs
        sync.maxOutboundQueueBytes = Int(c.bytes("maxOutboundQueueBytes", Int64(defaults.maxOutboundQueueBytes)))
        sync.verifyChangeSetSignatures = c.flag("verifyChangeSetSignatures")
        c.require(
            sync.limits.maxChangeSetBytes < sync.limits.maxFrameBytes,
            "A change set must fit in a frame: set --max-change-set-bytes (now \(ByteCount(Int64(sync.limits.maxChangeSetBytes))))"
                + " below --max-frame-bytes (now \(ByteCount(Int64(sync.limits.maxFrameBytes)))).")
        c.require(
            sync.maxMailboxTTLSeconds <= 600,
            "--mailbox-ttl may be at most 10m (the protocol's limit), not \(DurationText.format(milliseconds: UInt64(sync.maxMailboxTTLSeconds) * 1000)).")
        var http = HTTPServerConfiguration(
            host: c.text("host") ?? "127.0.0.1", port: c.number("port", 8080), sync: sync)
        if let cert = c.text("tlsCert"), let key = c.text("tlsKey") { http.tls = (cert, key) }
        c.require(
            c.isGiven("tlsCert") == c.isGiven("tlsKey"),
            "--tls-cert and --tls-key go together: give both for wss://, or neither for ws://.")
        http.trustedProxies = c.words("trustedProxies")
        http.compactEveryMs = c.milliseconds("compactEvery")
        return http
    }
}
