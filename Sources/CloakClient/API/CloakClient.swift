@_spi(Randomness) public import CloakCrypto
@_spi(Randomness) public import CloakProtocol
public import Foundation
public import Logging

/// The client an app embeds: one per device and account. Every method is safe to call from
/// any task; edits are durable when the call returns and sync in the background.
///
/// ```swift
/// let client = try await CloakClient.open(directory: dir, server: url, transport: WebSocketTransport())
/// try await client.createAccount()
/// await client.startSync()
/// let chat = try await client.createConversation(title: "Trip ideas")
/// let prompt = try await client.appendMessage(to: chat, role: .user, text: "Where to in May?")
/// let reply = try await client.beginMessage(in: chat, parent: prompt, role: .assistant)
/// for token in tokens { try await client.streamText(token, into: reply, in: chat) }
/// try await client.finishStreaming(in: chat)
/// for await view in await client.observe(chat) { render(view.messages) }
/// ```
///
/// It is the async adapter around a ``ClientEngine`` (the sans-IO client): it opens the
/// connections the engine asks for, sleeps until its deadlines, and turns its effects into
/// the streams below.
public actor CloakClient {
    let engine: ClientEngine
    let transport: any SyncTransport
    let server: URL
    var logger: Logger { engine.core.logger }

    var connection: (any SyncConnection)?
    var outgoing: AsyncStream<[UInt8]>.Continuation?
    var generation = 0
    var timer: Task<Void, Never>?
    var timerDeadline: UInt64?
    var observers: [ConversationID: [Int: AsyncStream<ConversationView>.Continuation]] = [:]
    var listObservers: [Int: AsyncStream<[ConversationSummary]>.Continuation] = [:]
    var eventObservers: [Int: AsyncStream<SecurityEvent>.Continuation] = [:]
    var stateObservers: [Int: AsyncStream<ConnectionState>.Continuation] = [:]
    var statusObservers: [Int: AsyncStream<SyncStatus>.Continuation] = [:]
    var changeObservers: [Int: AsyncStream<Set<ConversationID>>.Continuation] = [:]
    var lastStatus: SyncStatus?
    var nextObserverID = 0
    /// Callers waiting for a lifecycle flow's result.
    var flowWaiters: [FlowID: CheckedContinuation<Result<FlowOutcome, ClientError>, Never>] = [:]
    /// Results of flows that ended before anyone waited.
    var finishedFlows: [FlowID: Result<FlowOutcome, ClientError>] = [:]
    /// Callers of ``waitUntilSynced(timeout:)``.
    var syncWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
    /// The newest connection state.
    public internal(set) var connectionState: ConnectionState = .offline(retryAtMillis: nil)
    /// Why the newest connection attempt failed (the transport's error: refused, unresolvable
    /// host, an untrusted TLS certificate…), until a connection opens. Tools show it when they
    /// give up waiting for the server.
    public internal(set) var lastConnectionFailure: (any Error)?

    init(engine: ClientEngine, transport: any SyncTransport, server: URL) {
        self.engine = engine
        deviceID = engine.deviceID
        self.transport = transport
        self.server = server
    }

    /// Opens the client stored in `directory` (created on first use): device keys in
    /// `directory/secrets` (0600 files), everything else in `directory/cloak.sqlite`.
    ///
    /// Time comes from the system clock and every random byte from the operating system
    /// (through libsodium): an app cannot choose either, so it cannot choose a nonce (ADV-14).
    public static func open(
        directory: URL, server: URL, transport: any SyncTransport, configuration: ClientConfiguration = .init(),
        logger: Logger = Logger(label: "cloak.client")
    ) throws(ClientError) -> CloakClient {
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch { throw .storage("cannot create the client directory") }
        let secrets = try FileSecretStore(directory: directory.appendingPathComponent("secrets"))
        let store = try SQLiteClientStore(path: directory.appendingPathComponent("cloak.sqlite").path)
        let engine = try ClientEngine(
            store: store, secrets: secrets, configuration: configuration, clock: SystemWallClock(), random: SystemRandom(),
            verifier: ThreadedSignatureVerifier(), logger: logger)
        return CloakClient(engine: engine, transport: transport, server: server)
    }

    /// Whether `directory` holds a device, as ``open(directory:server:transport:configuration:logger:)``
    /// leaves it (its keys and its store). Tools that must not create a device by mistake (a
    /// mistyped path) check this before opening.
    public static func deviceExists(in directory: URL) -> Bool {
        let manager = FileManager.default
        let key = directory.appendingPathComponent("secrets").appendingPathComponent(DeviceIdentity.signingName + ".secret")
        return manager.fileExists(atPath: key.path)
            && manager.fileExists(atPath: directory.appendingPathComponent("cloak.sqlite").path)
    }

    /// The client library's version (bumped with each release; `cloak --version` prints it).
    public static let version = "0.2.0"

    /// This device's id.
    public nonisolated let deviceID: DeviceID

    /// Whether this device verified its own removal from the account (PROTOCOL.md §23): its keys
    /// are wiped, and it neither syncs nor writes any more.
    public var isRemovedFromAccount: Bool { engine.isRemoved }

    /// The account, once created, linked or recovered.
    public var accountID: AccountID? { engine.accountID }

    /// Starts background sync (reconnecting with backoff until ``stopSync()`` or ``close()``).
    public func startSync() {
        engine.startSync()
        drain()
    }

    /// Stops background sync and closes the connection.
    public func stopSync() {
        engine.stopSync()
        drain()
    }

    /// Seals pending streamed text, saves conversation states and stops syncing. Unsent change
    /// sets stay in the outbox and go out the next time the client syncs.
    public func close() throws(ClientError) {
        try engine.saveStates()
        stopSync()
        timer?.cancel()
        for continuation in observers.values.flatMap(\.values) { continuation.finish() }
        for continuation in eventObservers.values { continuation.finish() }
        for continuation in stateObservers.values { continuation.finish() }
        for continuation in listObservers.values { continuation.finish() }
        for continuation in statusObservers.values { continuation.finish() }
        for continuation in changeObservers.values { continuation.finish() }
        changeObservers = [:]
        statusObservers = [:]
        observers = [:]
        eventObservers = [:]
        stateObservers = [:]
        listObservers = [:]
        for waiter in syncWaiters.values { waiter.resume(returning: false) }
        syncWaiters = [:]
    }
}

@_spi(Simulation)
extension CloakClient {
    /// Opens a client over any store, secret store, clock, random source and signature
    /// verifier: for the simulator, the tests and the benchmarks, which need reproducible runs.
    public static func open(
        store: sending any ClientStore, secrets: any SecretStore, server: URL, transport: any SyncTransport,
        configuration: ClientConfiguration = .init(), clock: any WallClock, random: any RandomSource,
        verifier: any SignatureVerifier = ThreadedSignatureVerifier(), logger: Logger = Logger(label: "cloak.client")
    ) throws(ClientError) -> CloakClient {
        let engine = try ClientEngine(
            store: store, secrets: secrets, configuration: configuration, clock: clock, random: random, verifier: verifier,
            logger: logger)
        return CloakClient(engine: engine, transport: transport, server: server)
    }

    /// Opens a client whose store lives in memory (an in-memory SQLite database) and whose
    /// secrets are in `secrets`: nothing survives the process.
    public static func openInMemory(
        server: URL, transport: any SyncTransport, secrets: any SecretStore = InMemorySecretStore(),
        configuration: ClientConfiguration = .init(), clock: any WallClock = SystemWallClock(),
        random: any RandomSource = SystemRandom(), logger: Logger = Logger(label: "cloak.client")
    ) throws(ClientError) -> CloakClient {
        try open(
            store: try SQLiteClientStore(path: nil), secrets: secrets, server: server, transport: transport,
            configuration: configuration, clock: clock, random: random, logger: logger)
    }
}
