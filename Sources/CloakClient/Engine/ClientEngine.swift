import CloakCRDT
@_spi(Randomness) public import CloakCrypto
@_spi(Randomness) public import CloakProtocol
public import Logging

/// The whole client without I/O: the core (keys, device log, change sets, CRDT documents,
/// local store) and the sync machine (the connection and the lifecycle flows), driven by API
/// calls and events, answering with effects. ``CloakClient`` is the async adapter apps use; the
/// simulator drives an engine directly, step by step, under a virtual clock.
///
/// ```swift
/// let engine = try ClientEngine(store: store, secrets: secrets, clock: clock, random: random,
///                               verifier: InlineSignatureVerifier(), logger: logger)
/// engine.startSync()
/// for effect in engine.takeEffects() {
///     switch effect {
///     case .connect: …                        // open a connection, then engine.handle(.connected)
///     case .send(let bytes): …               // deliver; replies come back as .frame(bytes)
///     default: …
///     }
/// }
/// if let deadline = engine.nextDeadline { … engine.handle(.tick) at that time … }
/// ```
///
/// An engine is owned by one task or thread at a time (it is not `Sendable`); everything it
/// returns is.
@_spi(Simulation)
public final class ClientEngine {
    /// What the engine's driver reports.
    public enum Event: Sendable {
        /// The connection it asked for is open.
        case connected
        /// The connection closed (or could not be opened).
        case disconnected
        /// A binary message from the server.
        case frame([UInt8])
        /// The time ``nextDeadline`` named has come (or any later time).
        case tick
    }

    /// What the driver must do, in order.
    public enum Effect: Sendable {
        /// Open a connection to the server.
        case connect
        /// Close the connection.
        case close
        /// Send one binary message.
        case send([UInt8])
        /// These conversations changed (re-render them).
        case changed(Set<ConversationID>)
        /// Security events were detected.
        case events([SecurityEvent])
        /// The connection state changed.
        case state(ConnectionState)
        /// A lifecycle flow ended.
        case flowFinished(FlowID, Result<FlowOutcome, ClientError>)
    }

    let core: ClientCore
    var machine: SyncMachine
    private var pending: [Effect] = []
    private var nextFlowID: UInt64 = 1
    /// ``startSync()`` looked for an interrupted acceptance once.
    private var resumedAcceptance = false
    /// The newest connection state the machine announced.
    public private(set) var connectionState: ConnectionState = .offline(retryAtMillis: nil)
    /// When the connection last went live, while it is.
    private(set) var liveSince: UInt64?

    /// Opens the engine over a store and a secret store (creating the device's keys on first
    /// use).
    public init(
        store: any ClientStore, secrets: any SecretStore, configuration: ClientConfiguration = .init(),
        clock: any WallClock, random: any RandomSource, verifier: any SignatureVerifier, logger: Logger
    ) throws(ClientError) {
        let identity = try DeviceIdentity.loadOrCreate(in: secrets, random: random)
        let storageKey: SymmetricKey
        if let existing = try secrets.load(named: "storage-key") {
            do { storageKey = try SymmetricKey(existing) } catch { throw .storage("storage key is corrupt") }
        } else {
            storageKey = SymmetricKey.random(using: random)
            try secrets.store(storageKey.secret, named: "storage-key")
        }
        let environment = CoreEnvironment(
            identity: identity, cipher: LocalCipher(key: storageKey, random: random), clock: clock, random: random,
            verifier: verifier, configuration: configuration, logger: logger)
        core = try ClientCore(store: store, environment: environment)
        machine = SyncMachine(configuration: configuration)
    }

    /// This device's id.
    public var deviceID: DeviceID { core.me }
    /// The account, once created, linked or recovered.
    public var accountID: AccountID? { core.account }
    /// The current connection phase, for diagnostics and the simulator.
    public var isLive: Bool { machine.phase == .syncing(caughtUp: true) }
    /// Whether this device learned it was removed from the account.
    public var isRemoved: Bool { core.removedFromAccount }

    /// Handles a driver event.
    public func handle(_ event: Event) {
        let syncEvent: SyncEvent =
            switch event {
            case .connected: .connected
            case .disconnected: .disconnected
            case .frame(let bytes): .frame(bytes)
            case .tick: .tick
            }
        run(syncEvent)
    }

    /// The effects produced since the last call, in order.
    public func takeEffects() -> [Effect] {
        defer { pending = [] }
        return pending
    }

    /// When the driver should deliver the next ``Event/tick``, if ever.
    public var nextDeadline: UInt64? { machine.nextDeadline(core: core) }

    /// Starts background sync (reconnecting with backoff until ``stopSync()``). A link this
    /// device agreed to and a crash interrupted is finished first (``resumeAcceptance()``).
    public func startSync() {
        if !resumedAcceptance {
            resumedAcceptance = true
            _ = resumeAcceptance()
        }
        run(.start)
    }

    /// Stops background sync and closes the connection.
    public func stopSync() { run(.stop) }

    /// Live, nothing local waiting to be sent, no open incident, nothing known to be missing,
    /// no heal in progress.
    public var isSynced: Bool {
        isLive && machine.healing.scanned && !machine.healing.busy && core.incidents.isEmpty
            && core.expectations.missing(chains: core.ledger.chains).isEmpty && ((try? core.nothingToSend()) ?? false)
    }

    // MARK: Internals shared with the API

    func run(_ event: SyncEvent) {
        for effect in machine.handle(event, core: core) { record(effect) }
    }

    func startFlow(_ flow: any LifecycleFlow) -> FlowID {
        let id = FlowID(value: nextFlowID)
        nextFlowID += 1
        run(.startFlow(id, flow))
        return id
    }

    /// After a local edit: tell the driver what changed and let the machine push.
    func afterLocalEdit(_ output: CoreOutput) {
        // The machine surfaces the output (changes and events) itself: surfacing it here too
        // told the app about every local edit twice, rendering observed conversations twice.
        run(.coreOutput(output))
        if output.pushOutbox { run(.outboxChanged) }
    }

    private func record(_ effect: SyncEffect) {
        switch effect {
        case .connect: pending.append(.connect)
        case .close: pending.append(.close)
        case .send(let bytes): pending.append(.send(bytes))
        case .surface(let output): surface(output)
        case .state(let state):
            connectionState = state
            liveSince = state == .live ? (liveSince ?? core.now()) : nil
            pending.append(.state(state))
        case .flowFinished(let id, let result): pending.append(.flowFinished(id, result))
        }
    }

    func surface(_ output: CoreOutput) {
        if !output.events.isEmpty { pending.append(.events(output.events)) }
        if !output.changed.isEmpty { pending.append(.changed(output.changed)) }
    }
}
