public import CloakCrypto
public import CloakProtocol
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
public actor CloakClient {
    let core: ClientCore
    var machine: SyncMachine
    let transport: any SyncTransport
    let server: URL
    let configuration: ClientConfiguration
    var logger: Logger { core.logger }

    var connection: (any SyncConnection)?
    var outgoing: AsyncStream<[UInt8]>.Continuation?
    var generation = 0
    var timer: Task<Void, Never>?
    var timerDeadline: UInt64?
    var observers: [ConversationID: [Int: AsyncStream<ConversationView>.Continuation]] = [:]
    var listObservers: [Int: AsyncStream<[ConversationSummary]>.Continuation] = [:]
    var eventObservers: [Int: AsyncStream<SecurityEvent>.Continuation] = [:]
    var stateObservers: [Int: AsyncStream<ConnectionState>.Continuation] = [:]
    var nextObserverID = 0
    /// The newest connection state.
    public internal(set) var connectionState: ConnectionState = .offline(retryAtMillis: nil)

    init(core: ClientCore, transport: any SyncTransport, server: URL, configuration: ClientConfiguration) {
        self.core = core
        deviceID = core.identity.id
        self.transport = transport
        self.server = server
        self.configuration = configuration
        machine = SyncMachine(configuration: configuration)
    }

    /// Opens the client stored in `directory` (created on first use): device keys in
    /// `directory/secrets` (0600 files), everything else in `directory/cloak.sqlite`.
    public static func open(
        directory: URL, server: URL, transport: any SyncTransport, configuration: ClientConfiguration = .init(),
        clock: any WallClock = SystemWallClock(), random: any RandomSource = SystemRandom(),
        logger: Logger = Logger(label: "cloak.client")
    ) throws(ClientError) -> CloakClient {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch { throw .storage("cannot create the client directory") }
        let secrets = try FileSecretStore(directory: directory.appendingPathComponent("secrets"))
        let store = try ClientStore(path: directory.appendingPathComponent("cloak.sqlite").path)
        return try open(store: store, secrets: secrets, server: server, transport: transport,
                        configuration: configuration, clock: clock, random: random, logger: logger)
    }

    static func open(
        store: ClientStore, secrets: any SecretStore, server: URL, transport: any SyncTransport,
        configuration: ClientConfiguration, clock: any WallClock, random: any RandomSource, logger: Logger
    ) throws(ClientError) -> CloakClient {
        let identity = try DeviceIdentity.loadOrCreate(in: secrets, random: random)
        let storageKey: SymmetricKey
        if let existing = try secrets.load(named: "storage-key") {
            do { storageKey = try SymmetricKey(existing) } catch { throw .storage("storage key is corrupt") }
        } else {
            storageKey = SymmetricKey.random(using: random)
            try secrets.store(storageKey.secret, named: "storage-key")
        }
        let core = try ClientCore(
            store: store, storageKey: storageKey, identity: identity, clock: clock, random: random,
            configuration: configuration, logger: logger)
        return CloakClient(core: core, transport: transport, server: server, configuration: configuration)
    }

    /// This device's id.
    public nonisolated let deviceID: DeviceID

    /// The account, once created, linked or recovered.
    public var accountID: AccountID? { core.account?.account }

    /// Starts background sync (reconnecting with backoff until ``stopSync()`` or ``close()``).
    public func startSync() {
        apply(machine.handle(.start, core: core))
    }

    /// Stops background sync and closes the connection.
    public func stopSync() {
        apply(machine.handle(.stop, core: core))
    }

    /// Seals pending streamed text, saves conversation states and stops syncing. Unsent change
    /// sets stay in the outbox and go out the next time the client syncs.
    public func close() throws(ClientError) {
        _ = try core.flushDueBatches(force: true)
        try core.store.write { db in try core.saveDocuments(db: db) }
        stopSync()
        timer?.cancel()
        for continuation in observers.values.flatMap(\.values) { continuation.finish() }
        for continuation in eventObservers.values { continuation.finish() }
        for continuation in stateObservers.values { continuation.finish() }
        for continuation in listObservers.values { continuation.finish() }
        observers = [:]
        eventObservers = [:]
        stateObservers = [:]
        listObservers = [:]
    }
}

/// The system wall clock (the only place the client reads real time; everything else receives
/// it through ``WallClock`` so tests and the simulator can replace it).
public struct SystemWallClock: WallClock {
    /// Creates the system clock.
    public init() {}

    /// Milliseconds since the Unix epoch.
    public func nowMillis() -> UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1000))  // tidy:allow the injected clock's real implementation
    }
}

extension CloakClient {
    /// Opens a client whose store lives in memory and whose secrets are in `secrets`: for the
    /// simulator and tests (nothing survives the process).
    public static func openInMemory(
        server: URL, transport: any SyncTransport, secrets: any SecretStore = InMemorySecretStore(),
        configuration: ClientConfiguration = .init(), clock: any WallClock = SystemWallClock(),
        random: any RandomSource = SystemRandom(), logger: Logger = Logger(label: "cloak.client")
    ) throws(ClientError) -> CloakClient {
        try open(
            store: try ClientStore(path: nil), secrets: secrets, server: server, transport: transport,
            configuration: configuration, clock: clock, random: random, logger: logger)
    }
}
