import ArgumentParser
import CloakProtocol
import CloakServer

/// The sync core's limits and timeouts as options (each also a `CLOAK_…` variable).
struct LimitOptions: ParsableArguments {
    static let defaults = ServerConfiguration()

    @Option(help: "Largest WebSocket message (CLOAK_MAX_FRAME_BYTES).")
    var maxFrameBytes = int("CLOAK_MAX_FRAME_BYTES", defaults.limits.maxFrameBytes)

    @Option(help: "Most change sets in one push (CLOAK_MAX_CHANGE_SETS_PER_PUSH).")
    var maxChangeSetsPerPush = int("CLOAK_MAX_CHANGE_SETS_PER_PUSH", defaults.limits.maxChangeSetsPerPush)

    @Option(help: "Largest change set or snapshot (CLOAK_MAX_CHANGE_SET_BYTES).")
    var maxChangeSetBytes = int("CLOAK_MAX_CHANGE_SET_BYTES", defaults.limits.maxChangeSetBytes)

    @Option(help: "Pushes per second per device (CLOAK_MAX_PUSHES_PER_SECOND).")
    var maxPushesPerSecond = int("CLOAK_MAX_PUSHES_PER_SECOND", defaults.limits.maxPushesPerSecond)

    @Option(help: "Stored bytes per account (CLOAK_MAX_ACCOUNT_BYTES).")
    var maxAccountBytes = int("CLOAK_MAX_ACCOUNT_BYTES", Int(defaults.limits.maxAccountBytes))

    @Option(help: "Change sets per catch-up frame (CLOAK_MAX_CATCH_UP_BATCH).")
    var maxCatchUpBatch = int("CLOAK_MAX_CATCH_UP_BATCH", defaults.limits.maxCatchUpBatch)

    @Option(help: "Live connections per account (CLOAK_MAX_CONNECTIONS_PER_ACCOUNT).")
    var maxConnectionsPerAccount = int("CLOAK_MAX_CONNECTIONS_PER_ACCOUNT", defaults.maxConnectionsPerAccount)

    @Option(help: "Milliseconds to authenticate (CLOAK_HANDSHAKE_TIMEOUT_MS).")
    var handshakeTimeoutMs = int("CLOAK_HANDSHAKE_TIMEOUT_MS", Int(defaults.handshakeTimeoutMs))

    @Option(help: "Milliseconds without a frame before closing (CLOAK_IDLE_TIMEOUT_MS).")
    var idleTimeoutMs = int("CLOAK_IDLE_TIMEOUT_MS", Int(defaults.idleTimeoutMs))

    @Option(help: "Queued outgoing bytes per connection before SLOW_CONSUMER (CLOAK_MAX_OUTBOUND_QUEUE_BYTES).")
    var maxOutboundQueueBytes = int("CLOAK_MAX_OUTBOUND_QUEUE_BYTES", defaults.maxOutboundQueueBytes)

    @Option(
        help: ArgumentHelp(
            "Check every pushed change set's signature on arrival: true or false (CLOAK_VERIFY_CHANGE_SET_SIGNATURES; default false).",
            discussion: "Receivers verify every signature anyway; the server's check only refuses an author's own bad bytes early, at about twice the CPU per change set."))
    var verifyChangeSetSignatures: Bool?

    static func int(_ name: String, _ fallback: Int) -> Int {
        environment(name).flatMap(Int.init) ?? fallback
    }

    /// The integer variables above (and the serve command's port): one that is set must parse,
    /// rather than silently fall back to the default.
    static let integerVariables = [
        "CLOAK_MAX_FRAME_BYTES", "CLOAK_MAX_CHANGE_SETS_PER_PUSH", "CLOAK_MAX_CHANGE_SET_BYTES",
        "CLOAK_MAX_PUSHES_PER_SECOND", "CLOAK_MAX_ACCOUNT_BYTES", "CLOAK_MAX_CATCH_UP_BATCH",
        "CLOAK_MAX_CONNECTIONS_PER_ACCOUNT", "CLOAK_HANDSHAKE_TIMEOUT_MS", "CLOAK_IDLE_TIMEOUT_MS",
        "CLOAK_MAX_OUTBOUND_QUEUE_BYTES", "CLOAK_PORT",
    ]

    func validate() throws {
        for name in Self.integerVariables {
            if let raw = environment(name), Int(raw) == nil {
                throw ValidationError("\(name) must be a whole number, not \"\(raw)\"")
            }
        }
        let values = [
            maxFrameBytes, maxChangeSetsPerPush, maxChangeSetBytes, maxPushesPerSecond, maxAccountBytes, maxCatchUpBatch,
            maxConnectionsPerAccount, handshakeTimeoutMs, idleTimeoutMs, maxOutboundQueueBytes,
        ]
        guard values.allSatisfy({ $0 > 0 }) else { throw ValidationError("limits must be positive") }
        guard maxChangeSetBytes < maxFrameBytes else { throw ValidationError("a change set must fit in a frame") }
        // The flag wins over the variable; a variable that is neither true nor false is refused.
        if verifyChangeSetSignatures == nil, let raw = environment("CLOAK_VERIFY_CHANGE_SET_SIGNATURES"), Bool(raw) == nil {
            throw ValidationError("CLOAK_VERIFY_CHANGE_SET_SIGNATURES must be true or false, not \"\(raw)\"")
        }
    }

    var configuration: ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.limits.maxFrameBytes = maxFrameBytes
        configuration.limits.maxChangeSetsPerPush = maxChangeSetsPerPush
        configuration.limits.maxChangeSetBytes = maxChangeSetBytes
        configuration.limits.maxPushesPerSecond = maxPushesPerSecond
        configuration.limits.maxAccountBytes = Int64(maxAccountBytes)
        configuration.limits.maxCatchUpBatch = maxCatchUpBatch
        configuration.maxConnectionsPerAccount = maxConnectionsPerAccount
        configuration.handshakeTimeoutMs = UInt64(handshakeTimeoutMs)
        configuration.idleTimeoutMs = UInt64(idleTimeoutMs)
        configuration.maxOutboundQueueBytes = maxOutboundQueueBytes
        configuration.verifyChangeSetSignatures =
            verifyChangeSetSignatures ?? environment("CLOAK_VERIFY_CHANGE_SET_SIGNATURES").flatMap { Bool($0) }
            ?? Self.defaults.verifyChangeSetSignatures
        return configuration
    }
}
