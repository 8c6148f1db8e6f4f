@_spi(Simulation) import CloakClient
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakServer
import Logging
@_spi(Randomness) import CloakTesting

/// One deterministic world: the real server core (``SynchronousServer``) and real client
/// engines, connected by a simulated network, advanced by one seeded scheduler under a virtual
/// clock. Nothing in it reads real time or draws unseeded randomness, so a seed replays a run
/// event for event (``trace`` is the proof: equal seeds, equal hashes).
///
/// ```swift
/// let world = SimWorld(options: SimOptions(seed: 7))
/// let result = world.run()            // setup, workload with faults, heal, converge, check
/// print(result.summary)
/// ```
public final class SimWorld {
    /// What the scheduler runs.
    enum Event {
        case connect(device: Int, generation: Int)
        case toServer(device: Int, generation: Int, bytes: [UInt8])
        case toClient(device: Int, generation: Int, bytes: [UInt8])
        case disconnected(device: Int, generation: Int)
        case tick(device: Int)
        case serverTick
        case action(Int)
    }

    /// A frame on its way, seen by the hostile server before it is delivered.
    public enum Direction: Sendable { case toServer, toClient }

    public let options: SimOptions
    let clock = VirtualClock()
    /// The Ed25519 verdicts its devices share (each distinct signature is verified once).
    let signatureVerdicts = SharedSignatureVerdicts()
    var rng: SimRandom
    var queue = EventQueue<Event>()
    var actions: [(SimWorld) -> Void] = []
    var devices: [SimDevice] = []
    var server: SynchronousServer
    var serverUp = true
    /// Devices cut off from the server (a partition).
    var partitioned: Set<Int> = []
    /// Per device and direction, the time its last message is delivered (FIFO per connection).
    var lastDelivery: [Int: [Bool: UInt64]] = [:]
    var latency: ClosedRange<Int> = 1...20
    var trace = TraceHash()
    var notes = SimNotes()
    /// What the report measures beside the checks (``SimCollector``).
    var collector = SimCollector()
    /// Called for every frame in flight; returns what to deliver instead (hostile server).
    var intercept: ((SimWorld, Int, Direction, [UInt8]) -> [[UInt8]])?
    /// The server store's copy an operator took (restored later by the `restore` profile).
    var backup: InMemoryServerStore?
    /// Per account, the device-log length of the backup the server was restored to: a fork
    /// past it is the operator's doing, not the server's (see ``noteForkAfterRestore``).
    var restoredLogLength: [Int: Int] = [:]
    /// Whether the hostile server damages frames now (its window of the workload).
    var hostileOn = false
    /// Change sets the hostile server withholds from one device, until that device reports them.
    var withholdings: [Withholding] = []
    /// Devices the hostile server sends no key envelopes, with their event count when it began.
    var keyWithholdings: [Int: Int] = [:]
    /// Frames the hostile server damaged, by recipient and digest, with the alarms they must raise.
    var hostileMarks: [HostileMark.Key: HostileMark] = [:]
    /// Items the hostile server saw delivered, to replay later.
    var replayPool: [Cloak_V1_StoredChangeSet] = []
    /// Hashes of change sets already pushed (a re-push repeats its nonce legitimately).
    var sentHashes: Set<ChangeSetHash> = []
    /// The run's assistants (SimWorld+Assistants), and the stream their decisions draw from:
    /// its own, so a run without assistants draws what it drew before they existed.
    var assistants: [SimAssistant] = []
    lazy var assistantRandom = SimRandom(seed: options.seed ^ 0xA551_57A7_0000_0027)
    /// Devices recovering with a passphrase while the hostile server weakens the Argon2id
    /// parameters it serves them (SimWorld+KDFDowngrade), and whether it has.
    var kdfDowngrades: [Int: Bool] = [:]
    let logs: LogCapture
    let configuration: ClientConfiguration
    let logger: Logger
    let serverLogger: Logger
    var eventsProcessed = 0
    /// Event kinds (with their device) since the last multiple of 20,000 events: what a
    /// livelocked run was busy with.
    var recentEvents: [String: Int] = [:]

    /// Creates the world (nothing runs until ``run()`` or ``step()``).
    public init(options: SimOptions, logs: LogCapture = LogCapture()) {
        self.options = options
        rng = SimRandom(seed: options.seed)
        var configuration = ClientConfiguration()
        configuration.reconnectMinMillis = 100
        configuration.reconnectMaxMillis = 5_000
        configuration.requestTimeoutMillis = 10_000
        configuration.snapshotEvery = 60
        configuration.saveStateEvery = 40
        self.configuration = configuration
        self.logs = logs
        logger = logs.logger(label: "sim.client")
        serverLogger = logs.logger(label: "sim.server")
        server = SynchronousServer(
            configuration: Self.serverConfiguration(options), random: DeterministicRandom(seed: options.seed ^ 0x5E_7E7),
            logger: serverLogger)
    }

    public var now: UInt64 { clock.nowMillis() }

    // MARK: Scheduling

    func schedule(_ event: Event, at time: UInt64) { queue.push(event, at: max(time, now)) }

    func schedule(after delay: UInt64, _ action: @escaping (SimWorld) -> Void) {
        actions.append(action)
        schedule(.action(actions.count - 1), at: now + delay)
    }

    /// Runs the next event; false when nothing is left.
    @discardableResult
    func step() -> Bool {
        guard let (time, event) = queue.pop() else { return false }
        clock.advance(to: time)
        eventsProcessed += 1
        // Labelling decodes frames: only once a run looks like it will not end.
        if eventsProcessed > options.maxEvents / 2 {
            if eventsProcessed % 20_000 == 1 { recentEvents = [:] }
            recentEvents[label(event), default: 0] += 1
        }
        handle(event)
        return true
    }

    /// Runs events until `condition` holds or virtual time passes `deadline`.
    func run(until deadline: UInt64, while condition: () -> Bool = { true }) {
        while condition(), !livelocked, let next = queue.nextTime, next <= deadline { step() }
        clock.advance(to: max(now, min(deadline, queue.nextTime ?? deadline)))
    }

    /// Past the event budget: the run stops and fails, naming what the last events were.
    var livelocked: Bool {
        guard eventsProcessed >= options.maxEvents else { return false }
        if !notes.failures.contains(where: { $0.check == "liveness" }) {
            let top = recentEvents.sorted { $0.value > $1.value }.prefix(8).map { "\($0.key)×\($0.value)" }
            let stuck = devices.compactMap { device -> String? in
                guard let engine = device.engine, let next = engine.nextDeadline,
                    (recentEvents["tick \(device.name)"] ?? 0) > 1_000
                else { return nil }
                return "\(device.name) (\(device.status)) next tick in \(Int64(next) - Int64(now)) ms: \(engine.diagnostics)"
            }
            notes.fail("liveness", "\(eventsProcessed) events without converging (virtual time \(now / 1000 % 100_000) s); recent: "
                + "\(top.joined(separator: ", ")); \(stuck.joined(separator: "; "))")
        }
        return true
    }

    private func handle(_ event: Event) {
        switch event {
        case .connect(let index, let generation):
            let device = devices[index]
            guard generation == device.generation, let engine = device.engine else { return }
            guard serverUp, !partitioned.contains(index) else {
                trace.add("connect-failed", index)
                device.generation += 1
                engine.handle(.disconnected)
                return pump(device)
            }
            let connection = server.connect(nowMs: now)
            device.connection = connection
            trace.add("connect", index)
            engine.handle(.connected)
            pump(device)
            flushServer()
        case .toServer(let index, let generation, let bytes):
            let device = devices[index]
            guard generation == device.generation, let connection = device.connection else { return }
            trace.add("to-server", index, bytes)
            server.receive(bytes, from: connection, nowMs: now)
            flushServer()
        case .toClient(let index, let generation, let bytes):
            let device = devices[index]
            guard generation == device.generation, let engine = device.engine else { return }
            trace.add("to-client", index, bytes)
            let eventsBefore = device.events.count
            let heldBefore = hostileMarks.isEmpty ? 0 : engine.heldChangeSets
            engine.handle(.frame(bytes))
            pump(device)
            checkHostileFrame(bytes, device: device, eventsBefore: eventsBefore, heldBefore: heldBefore)
            if !withholdings.isEmpty || !keyWithholdings.isEmpty { checkWithholdings(device) }
        case .disconnected(let index, let generation):
            let device = devices[index]
            guard generation == device.generation, let engine = device.engine else { return }
            trace.add("disconnected", index)
            dropConnection(device)
            engine.handle(.disconnected)
            pump(device)
        case .tick(let index):
            let device = devices[index]
            // A tick an earlier deadline superseded is dropped: the driver has one timer. Kept,
            // each one re-armed the timer when it fired, so a device that often moved its
            // deadline earlier (a streaming assistant, a polling link) piled up ticks by the
            // thousand and spent the run's event budget (seeds 13, 590 and others).
            // (A past deadline is scheduled at the current time, so the armed time may be
            // earlier than this tick's; a later one means this tick was superseded.)
            guard let armed = device.scheduledTick, armed <= now else { return }
            device.scheduledTick = nil
            guard let engine = device.engine else { return }
            engine.handle(.tick)
            pump(device)
            if !withholdings.isEmpty || !keyWithholdings.isEmpty { checkWithholdings(device) }
        case .serverTick:
            server.tick(nowMs: now)
            flushServer()
            schedule(.serverTick, at: now + 1_000)
        case .action(let index):
            actions[index](self)
        }
    }

    /// "to-server d3 push": an event's kind, device and frame body, for the livelock report.
    func label(_ event: Event) -> String {
        func body(_ bytes: [UInt8]) -> String {
            guard let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 24), let body = frame.body else { return "?" }
            return String(describing: body).prefix { $0 != "(" }.description
        }
        return switch event {
        case .connect(let device, _): "connect \(devices[device].name)"
        case .toServer(let device, _, let bytes): "to-server \(devices[device].name) \(body(bytes))"
        case .toClient(let device, _, let bytes): "to-client \(devices[device].name) \(body(bytes))"
        case .disconnected(let device, _): "disconnected \(devices[device].name)"
        case .tick(let device): "tick \(devices[device].name)"
        case .serverTick: "server tick"
        case .action: "action"
        }
    }

    // MARK: Routing

    /// Carries out a device's effects.
    func pump(_ device: SimDevice) {
        // A flow's callback may call the engine (and pump) while its effects are being carried
        // out: the outer loop picks up whatever that produced, in order.
        guard let engine = device.engine, !device.pumping else { return }
        device.pumping = true
        defer { device.pumping = false }
        var effects = engine.takeEffects()
        while !effects.isEmpty {
            for effect in effects { apply(effect, of: device) }
            effects = engine.takeEffects()
        }
        if let deadline = engine.nextDeadline, device.scheduledTick.map({ deadline < $0 }) ?? true {
            device.scheduledTick = deadline
            schedule(.tick(device: device.index), at: deadline)
        }
    }

    private func apply(_ effect: ClientEngine.Effect, of device: SimDevice) {
        switch effect {
        case .connect:
            dropConnection(device)
            schedule(.connect(device: device.index, generation: device.generation), at: now + delay())
        case .close:
            dropConnection(device)
        case .send(let bytes):
            guard device.connection != nil else { return }
            deliver(bytes, for: device, direction: .toServer)
        case .changed(let conversations):
            trace.add("changed", device.index, conversations.sorted().flatMap(\.bytes))
            noteChanged(device, conversations)
        case .events(let events):
            device.events += events
            for event in events { trace.add("event:\(event.kind.rawValue)", device.index) }
            noteForkAfterRestore(device, events)
        case .state(let state):
            trace.add("state:\(state)", device.index)
        case .flowFinished(let id, let result):
            trace.add("flow", device.index)
            device.flowCallbacks.removeValue(forKey: id)?(result)
        }
    }

    /// Forgets the device's connection (the server's side closes too).
    func dropConnection(_ device: SimDevice) {
        device.generation += 1
        lastDelivery[device.index] = nil
        if let connection = device.connection {
            device.connection = nil
            server.disconnect(connection)
            flushServer()
        }
    }

    /// Moves everything the server sent to its devices, in device order.
    func flushServer() {
        for device in devices {
            guard let connection = device.connection else { continue }
            for output in server.drain(connection) {
                switch output {
                case .frame(let bytes):
                    deliver(bytes, for: device, direction: .toClient)
                case .closed:
                    device.connection = nil
                    schedule(.disconnected(device: device.index, generation: device.generation), at: now + delay())
                }
            }
        }
    }

    /// Schedules one message on a connection, after the hostile server (if any) had its say.
    func deliver(_ bytes: [UInt8], for device: SimDevice, direction: Direction) {
        var frames = intercept?(self, device.index, direction, bytes) ?? [bytes]
        if !kdfDowngrades.isEmpty { frames = frames.map { downgradeKDF(device.index, direction, $0) } }
        let toServer = direction == .toServer
        for frame in frames {
            inspect(frame, direction: direction)
            let at = max(now + delay(), (lastDelivery[device.index]?[toServer] ?? 0))
            lastDelivery[device.index, default: [:]][toServer] = at
            let event: Event =
                toServer
                ? .toServer(device: device.index, generation: device.generation, bytes: frame)
                : .toClient(device: device.index, generation: device.generation, bytes: frame)
            schedule(event, at: at)
        }
    }

    func delay() -> UInt64 { UInt64(rng.within(latency)) }
}
