@_spi(Randomness) public import CloakCrypto
public import CloakServer
@_spi(Randomness) import CloakProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import HummingbirdWebSocket
public import Logging
import NIOCore
import NIOSSL
import Prometheus
public import ServiceLifecycle

/// Where and how the sync server listens, plus the sync core's own configuration.
///
/// ```swift
/// var configuration = HTTPServerConfiguration(port: 0)          // any free port
/// configuration.sync.limits.maxFrameBytes = 1 << 20
/// ```
public struct HTTPServerConfiguration: Sendable {
    /// Interface to bind (default loopback).
    public var host: String
    /// Port; 0 picks a free one (read it from ``RunningServer/port``).
    public var port: Int
    /// PEM certificate chain and private key for TLS (`wss://`); nil serves plain `ws://`.
    public var tls: (certificatePath: String, privateKeyPath: String)?
    /// Limits, timeouts and policies of the sync core.
    public var sync: ServerConfiguration
    /// How often handshake and idle timeouts are checked.
    public var tickInterval: Duration
    /// Load balancers whose `X-Forwarded-For` names the client (per-address limits); any other
    /// peer is the client itself.
    public var trustedProxies: [String]
    /// Run compaction in the server this often (nil: never; `cloak-server compact` still can).
    public var compactEveryMs: UInt64?
    /// How often the operator's account blocks and erasures are read from the store.
    public var accessSweepInterval: Duration
    /// How often the store's totals (metrics, the total-storage cap) are read again.
    public var usageInterval: Duration

    /// Defaults: 127.0.0.1:8080, no TLS, the core's defaults, a one-second tick, no trusted
    /// proxies, no scheduled compaction, blocks read every 5 s and totals every minute.
    public init(
        host: String = "127.0.0.1", port: Int = 8080, tls: (certificatePath: String, privateKeyPath: String)? = nil,
        sync: ServerConfiguration = ServerConfiguration(), tickInterval: Duration = .seconds(1)
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.sync = sync
        self.tickInterval = tickInterval
        trustedProxies = []
        compactEveryMs = nil
        accessSweepInterval = .seconds(5)
        usageInterval = .seconds(60)
    }
}

/// A server that is up: its port and its core.
public struct RunningServer: Sendable {
    /// The bound port.
    public let port: Int
    /// The sync core (connection count, shutdown state).
    public let registry: SyncRegistry
    /// `ws://127.0.0.1:<port>/v1/sync`.
    public var syncURL: String { "ws://127.0.0.1:\(port)/v1/sync" }
}

/// The hosted sync server: Hummingbird 2 with a WebSocket route `/v1/sync` over the sans-IO
/// core, `/healthz`, `/readyz` (the store answers) and `/metrics` (Prometheus), run as
/// swift-service-lifecycle services with graceful shutdown.
///
/// ```swift
/// // In a process (cloak-server): a ServiceGroup that shuts down on SIGTERM/SIGINT.
/// let server = CloakHTTPServer(configuration: .init(), store: store, logger: logger)
/// try await ServiceGroup(services: try server.services(), gracefulShutdownSignals: [.sigterm, .sigint],
///                        logger: logger).run()
///
/// // In tests, the simulator or a client's tests: on a free loopback port.
/// try await CloakHTTPServer.withRunning(configuration: .init(port: 0), store: InMemoryServerStore(),
///                                       logger: logger) { server in
///     try await connect(to: server.syncURL)
/// }
/// ```
public struct CloakHTTPServer: Sendable {
    let configuration: HTTPServerConfiguration
    let store: any ServerStore
    let logger: Logger
    let random: any RandomSource
    let registry: SyncRegistry
    let table: ConnectionTable
    let prometheus: PrometheusCollectorRegistry
    let gauges: ServerGauges

    /// Builds the server around a migrated store (ServerHello nonces from the operating system).
    public init(configuration: HTTPServerConfiguration, store: any ServerStore, logger: Logger) {
        self.init(configuration: configuration, store: store, logger: logger, random: SystemRandom())
    }

    /// ``init(configuration:store:logger:)`` with the ServerHello nonces from `random` (tests).
    @_spi(Randomness)
    public init(configuration: HTTPServerConfiguration, store: any ServerStore, logger: Logger, random: any RandomSource) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.random = random
        prometheus = PrometheusCollectorRegistry()
        // Commits and fanout take well under the default 5 ms lowest bucket.
        let fine: [Duration] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(20), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .seconds(1), .seconds(5),
        ]
        let factory = DescribedMetricsFactory(
            registry: prometheus,
            durationBuckets: ["cloak_commit_latency_seconds": fine, "cloak_fanout_latency_seconds": fine])
        let metrics = ServerMetrics(factory: factory)
        gauges = ServerGauges(registry: prometheus)
        table = ConnectionTable(metrics: metrics)
        registry = SyncRegistry(
            configuration: configuration.sync, output: table, metrics: metrics, logger: logger, work: ConcurrentWork())
    }

    /// The services to run in a `ServiceGroup`: the HTTP application, then the sync service
    /// (graceful shutdown runs in reverse: commits finish and connections close before the
    /// listener stops). `onRunning` receives the bound port.
    public func services(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> [any Service] {
        let certificates = try configuration.tls.map { tls throws(CertificateReloader.Failure) in
            try CertificateReloader(certificatePath: tls.certificatePath, keyPath: tls.privateKeyPath)
        }
        let maintenance = MaintenanceService(
            registry: registry, store: store, gauges: gauges, configuration: configuration, certificates: certificates,
            logger: logger)
        return [try application(onRunning: onRunning, certificates: certificates), syncService, maintenance]
    }

    /// Starts the server on `configuration`'s address (use port 0 for a free port), runs `body`
    /// with it, then shuts it down gracefully.
    public static func withRunning<T: Sendable>(
        configuration: HTTPServerConfiguration, store: any ServerStore, logger: Logger,
        _ body: @Sendable (RunningServer) async throws -> T
    ) async throws -> T {
        try await withRunning(configuration: configuration, store: store, logger: logger, random: SystemRandom(), body)
    }

    /// ``withRunning(configuration:store:logger:_:)`` with the ServerHello nonces from `random` (tests).
    @_spi(Randomness)
    public static func withRunning<T: Sendable>(
        configuration: HTTPServerConfiguration, store: any ServerStore, logger: Logger,
        random: any RandomSource, _ body: @Sendable (RunningServer) async throws -> T
    ) async throws -> T {
        let server = CloakHTTPServer(configuration: configuration, store: store, logger: logger, random: random)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let group = ServiceGroup(
            services: try server.services { port in portContinuation.yield(port) }, gracefulShutdownSignals: [],
            logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask {
                // If the server cannot start, ending the port stream lets the error surface.
                defer { portContinuation.finish() }
                try await group.run()
                return nil
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                while try await tasks.next() != nil {}
                throw CancellationError()
            }
            let result: Result<T, any Error>
            do {
                result = .success(try await body(RunningServer(port: port, registry: server.registry)))
            } catch {
                result = .failure(error)
            }
            await group.triggerGracefulShutdown()
            while try await tasks.next() != nil {}
            return try result.get()
        }
    }

    var syncService: SyncService {
        SyncService(registry: registry, table: table, store: store, tickInterval: configuration.tickInterval, logger: logger)
    }

    func application(onRunning: @escaping @Sendable (Int) async -> Void, certificates: CertificateReloader?) throws
        -> some Service
    {
        let router = Router(context: SyncRequestContext.self)
        addHealthRoutes(to: router)
        let handler = SyncConnectionHandler(registry: registry, table: table, store: store, random: random, logger: logger)
        let trusted = Set(configuration.trustedProxies)
        let forwardedFor = HTTPField.Name("X-Forwarded-For")
        router.ws("/v1/sync") { inbound, outbound, context in
            let channel = context.requestContext.channel
            let address = ClientAddress.resolve(
                peer: channel.remoteAddress, forwardedFor: forwardedFor.flatMap { context.request.headers[$0] },
                trustedProxies: trusted)
            await handler.handle(inbound: inbound, outbound: outbound, channel: channel, address: address)
        }
        let limits = configuration.sync.limits
        // Frames a little over the limit are still read, so they can be answered with
        // FRAME_TOO_LARGE; anything larger is refused by the WebSocket layer (close 1009).
        let webSocket = WebSocketServerConfiguration(
            maxFrameSize: limits.maxFrameBytes + min(limits.maxFrameBytes, 1 << 20), autoPing: .disabled,
            closeTimeout: .seconds(5))
        let channel = HTTP1WebSocketUpgradeChannel.Configuration(ws: webSocket)
        let address = ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port))
        let running: @Sendable (any Channel) async -> Void = { channel in await onRunning(channel.localAddress?.port ?? 0) }
        guard let certificates else {
            return Application(
                router: router, server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: channel),
                configuration: address, onServerRunning: running, logger: logger)
        }
        return Application(
            router: router,
            server: try .tls(
                .http1WebSocketUpgrade(webSocketRouter: router, configuration: channel),
                tlsConfiguration: certificates.configuration),
            configuration: address, onServerRunning: running, logger: logger)
    }
}
