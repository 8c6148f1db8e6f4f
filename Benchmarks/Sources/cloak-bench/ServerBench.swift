import ArgumentParser
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import CloakServer
import CloakServerHTTP
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import PostgresNIO
import ServiceLifecycle
import Synchronization
import UnixSignals
@_spi(Randomness) import CloakTesting

/// `scripts/bench server [--json]`: the sync server under load over real loopback WebSockets.
/// The server runs in a child process (this executable with `--child`), so its CPU time and
/// resident memory are measured apart from the clients': ingest with 1, 16 and 256 pushing
/// devices (1 KiB ciphertexts), fanout latency to 1,000 devices, memory per idle connection at
/// 1,000 and 5,000 connections, catch-up of 100,000 change sets, and server CPU per delivery.
/// SQLite first, then PostgreSQL when one is reachable (CLOAK_BENCH_POSTGRES_URL,
/// CLOAK_TEST_POSTGRES_URL, or scripts/postgres's default URL).
struct ServerSuite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server", abstract: "Sync server: ingest, fanout latency, idle memory, catch-up, CPU per delivery.")

    @OptionGroup var options: SuiteOptions

    @Flag(help: "A tenth of every workload (a smoke run; the numbers are not the issue's).")
    var quick = false

    @Option(help: "Phases to run (comma-separated: ingest1, ingest16, ingest256, fanout, floor, memory, shared; catch-up runs with ingest1; floor is the fanout workload on a bare SwiftNIO relay; shared is fanout across two server processes on PostgreSQL).")
    var phases = "ingest1,ingest16,ingest256,fanout,floor,memory,shared"

    @Flag(help: .hidden) var child = false
    @Flag(help: .hidden) var floorChild = false
    @Option(help: .hidden) var database = ""

    func run() throws {
        if floorChild {
            try blocking { try await FanoutFloorServer.serve() }
        }
        if child {
            // As cloak-server does: the sync tasks run on NIO's event loops.
            ProcessTuning.apply()
            NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
            let database = database
            try blocking { try await BenchServer.serve(database: database) }
            return
        }
        let quick = quick
        let phases = Set(phases.split(separator: ",").map(String.init))
        let report = try blocking { try await ServerBenchmark(scale: quick ? 10 : 1, phases: phases).run() }
        report.print(json: options.json)
    }
}

/// Runs async work from a synchronous command (the suite's root command is synchronous).
private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let box = Mutex<Result<T, any Error>?>(nil)
    Task {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        box.withLock { $0 = result }
        done.signal()
    }
    done.wait()
    guard let result = box.withLock({ $0 }) else { throw BenchError.failed("no result") }
    return try result.get()
}

enum BenchError: Error {
    case failed(String)
}

private func log(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

// MARK: - The child: a server process

enum BenchServer {
    static func serve(database: String) async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let logger = Logger(label: "cloak-bench-server")
        let store = try StoreLocation(parsing: database).open(logger: logger)
        try await store.migrate()
        var configuration = HTTPServerConfiguration(port: 0)
        configuration.sync.limits.maxPushesPerSecond = 1_000_000
        configuration.sync.maxConnectionsPerAccount = 1_000_000
        configuration.sync.handshakeTimeoutMs = 3_600_000
        configuration.sync.idleTimeoutMs = 3_600_000
        configuration.sync.maxOutboundQueueBytes = 256 << 20
        // As cloak-server does: a PostgreSQL database may be shared by several processes.
        configuration.sync.sharedStore = store is PostgresServerStore
        let server = CloakHTTPServer(configuration: configuration, store: store, logger: logger)
        let group = ServiceGroup(
            services: try server.services { port in
                FileHandle.standardOutput.write(Data("listening \(port)\n".utf8))
            }, gracefulShutdownSignals: [.sigterm], logger: logger)
        try await group.run()
        await store.close()
    }
}

/// The parent's handle on a child server: its port, CPU time and resident memory.
final class ChildServer: Sendable {
    let process: Process
    let port: Int

    private init(process: Process, port: Int) {
        self.process = process
        self.port = port
    }

    static func start(database: String) async throws -> ChildServer {
        try await start(arguments: ["server", "--child", "--database", database])
    }

    /// This executable run again with `arguments`; it prints `listening PORT` once it serves.
    static func start(arguments: [String]) async throws -> ChildServer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = Mutex("")
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        for _ in 0..<3_000 {
            if let line = text.withLock({ $0 }).split(separator: "\n").first(where: { $0.hasPrefix("listening ") }),
                let port = Int(line.dropFirst("listening ".count))
            {
                return ChildServer(process: process, port: port)
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.terminate()
        throw BenchError.failed("the server child did not start")
    }

    /// User + system CPU seconds of the child (/proc/PID/stat).
    var cpuSeconds: Double { processCPUSeconds("\(process.processIdentifier)") }

    /// Resident set size in bytes (/proc/PID/status VmRSS).
    var residentBytes: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kib * 1024
    }

    func stop() async {
        process.terminate()
        for _ in 0..<1_000 where process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

// MARK: - Workloads

/// An account and its devices' keys, built deterministically.
struct BenchAccount: Sendable {
    let log: DeviceLog
    let keys: [Ed25519PrivateKey]
    let conversationKey: SymmetricKey
    var account: AccountID { log.account }
    var genesis: [UInt8] { log.entries[0].wire }

    init(seed: UInt64, devices: Int) {
        let random = DeterministicRandom(seed: seed)
        keys = (0..<devices).map { _ in Ed25519PrivateKey(using: random) }
        let agreement = (0..<devices).map { _ in X25519PrivateKey(using: random).publicKey }
        var log: DeviceLog
        do {
            log = try DeviceLog(
                genesis: .genesis(device: keys[0], agreementKey: agreement[0], accountNonce: random.bytes(16), createdAtMs: 1))
            for index in 1..<max(devices, 1) {
                try log.append(
                    .add(signingKey: keys[index].publicKey, agreementKey: agreement[index], after: log, signer: keys[0], createdAtMs: 1))
            }
        } catch { preconditionFailure("benchmark device log: \(error)") }
        self.log = log
        conversationKey = SymmetricKey.random(using: random)
    }

    /// `count` change sets of device `device`'s chain, 1 KiB of ciphertext each.
    func chain(device: Int, count: Int, seed: UInt64) -> [[UInt8]] {
        let random = DeterministicRandom(seed: seed)
        let conversation = ConversationID(unchecked: [UInt8](repeating: UInt8(truncatingIfNeeded: device), count: 16))
        var previous = ChangeSetHash.zero
        var out: [[UInt8]] = []
        out.reserveCapacity(count)
        for seq in 1...UInt64(max(count, 1)) where seq <= UInt64(count) {
            let header = ChangeSetHeader(
                account: account, conversation: conversation, author: DeviceID(signingKey: keys[device].publicKey), seq: seq,
                prevHash: previous, epoch: 1, deviceLogIndex: log.headIndex, deviceLogHead: log.head)
            do {
                // 1,000 bytes pad to 1,024: the ciphertext is 1 KiB plus its tag.
                let changeSet = try ChangeSetSealer.seal(
                    body: random.bytes(1_000), header: header, conversationKey: conversationKey, signer: keys[device],
                    random: random)
                previous = changeSet.hash
                out.append(changeSet.wire)
            } catch { preconditionFailure("benchmark seal: \(error)") }
        }
        return out
    }
}

/// Frames the benchmark sends.
enum BenchFrames {
    static func register(_ account: BenchAccount) -> [UInt8] {
        var body = Cloak_V1_Register()
        body.genesis = Data(account.genesis)
        return FrameCodec.encode(.register(body), requestID: 1)
    }

    static func authenticate(_ account: BenchAccount, device: Int, nonce: [UInt8], id: UInt64) -> [UInt8] {
        var body = Cloak_V1_Authenticate()
        body.version = 1
        body.accountID = Data(account.account.bytes)
        let deviceID = DeviceID(signingKey: account.keys[device].publicKey)
        body.deviceID = Data(deviceID.bytes)
        body.signature = Data(
            AuthChallenge.sign(serverNonce: nonce, account: account.account, device: deviceID, key: account.keys[device]))
        return FrameCodec.encode(.authenticate(body), requestID: id)
    }

    static func push(_ items: ArraySlice<[UInt8]>, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_Push()
        body.changeSets = items.map { Data($0) }
        return FrameCodec.encode(.push(body), requestID: id)
    }

    static func append(_ entry: DeviceLogEntry, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_AppendDeviceLog()
        body.entry = Data(entry.wire)
        return FrameCodec.encode(.appendDeviceLog(body), requestID: id)
    }

    /// A complete masked client frame (RFC 6455 §5.2) around `payload`, built before timing
    /// starts so the clients' masking does not compete with the server for the two cores.
    static func masked(_ payload: [UInt8]) -> ByteBuffer {
        let key: [UInt8] = [0x5A, 0x17, 0xC3, 0x8E]
        var buffer = ByteBufferAllocator().buffer(capacity: payload.count + 14)
        buffer.writeInteger(UInt8(0x82))
        switch payload.count {
        case ..<126:
            buffer.writeInteger(UInt8(0x80 | payload.count))
        case ...0xFFFF:
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        default:
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        buffer.writeBytes(key)
        buffer.writeBytes(payload.enumerated().map { $1 ^ key[$0 % 4] })
        return buffer
    }

    static func subscribe(after cursor: UInt64, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_Subscribe()
        body.afterCursor = cursor
        return FrameCodec.encode(.subscribe(body), requestID: id)
    }
}

/// Percentile of sorted values.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

// MARK: - A lean WebSocket client

/// What a Deliver frame carried, read without decoding the change sets (the client must not
/// be the bottleneck of a server benchmark).
struct DeliverSummary: Sendable {
    var requestID: UInt64 = 0
    var count = 0
    var lastCursor: UInt64 = 0
    var caughtUp = false

    /// Nil when `bytes` is not a Deliver frame.
    init?(_ bytes: [UInt8]) {
        var reader = ProtoReader(bytes: bytes, position: 0, end: bytes.count)
        var sawDeliver = false
        while let (field, wire) = reader.key() {
            if field == 1, wire == 0 {
                requestID = reader.varint()
            } else if field == 14, wire == 2 {
                let length = Int(reader.varint())
                var deliver = ProtoReader(bytes: bytes, position: reader.position, end: reader.position + length)
                reader.position += length
                sawDeliver = true
                while let (inner, innerWire) = deliver.key() {
                    if inner == 1, innerWire == 2 {
                        let itemLength = Int(deliver.varint())
                        var item = ProtoReader(bytes: bytes, position: deliver.position, end: deliver.position + itemLength)
                        deliver.position += itemLength
                        count += 1
                        while let (itemField, itemWire) = item.key() {
                            if itemField == 1, itemWire == 0 { lastCursor = item.varint() } else { item.skip(itemWire) }
                        }
                    } else if inner == 2, innerWire == 0 {
                        caughtUp = deliver.varint() != 0
                    } else {
                        deliver.skip(innerWire)
                    }
                }
            } else {
                return nil
            }
        }
        guard sawDeliver else { return nil }
    }
}

/// Just enough protobuf reading for ``DeliverSummary``.
struct ProtoReader {
    let bytes: [UInt8]
    var position: Int
    let end: Int

    mutating func varint() -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < end, shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        return value
    }

    mutating func key() -> (UInt64, UInt64)? {
        guard position < end else { return nil }
        let key = varint()
        return (key >> 3, key & 7)
    }

    mutating func skip(_ wire: UInt64) {
        switch wire {
        case 0: _ = varint()
        case 2: position += Int(varint())
        case 1: position += 8
        case 5: position += 4
        default: position = end
        }
    }
}

/// Where a connection's frames go: replies wake their requests; acks and deliveries go to the
/// workload's hooks, on the event loop, as they arrive.
final class Inbox: Sendable {
    struct Hooks: Sendable {
        var onAck: (@Sendable (_ requestID: UInt64, _ ack: Cloak_V1_PushAck, _ socket: BenchSocket) -> Void)?
        var onDeliver: (@Sendable (_ summary: DeliverSummary, _ at: ContinuousClock.Instant) -> Void)?
    }

    private struct State {
        var waiters: [UInt64: CheckedContinuation<Cloak_V1_Frame, any Error>] = [:]
        var early: [UInt64: Cloak_V1_Frame] = [:]
        var socket: BenchSocket?
    }

    static let helloKey = UInt64.max
    private let state = Mutex(State())
    let hooks: Hooks

    init(hooks: Hooks) {
        self.hooks = hooks
    }

    func attach(_ socket: BenchSocket) { state.withLock { $0.socket = socket } }

    func wait(for id: UInt64) async throws -> Cloak_V1_Frame {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Cloak_V1_Frame? = state.withLock { s in
                if let frame = s.early.removeValue(forKey: id) { return frame }
                s.waiters[id] = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func received(_ bytes: [UInt8], at instant: ContinuousClock.Instant) {
        if let summary = DeliverSummary(bytes) {
            hooks.onDeliver?(summary, instant)
            // A catch-up's last page answers its Subscribe.
            guard summary.requestID != 0, summary.caughtUp else { return }
            var frame = Cloak_V1_Frame()
            frame.requestID = summary.requestID
            frame.body = .deliver(Cloak_V1_Deliver())
            deliver(frame, key: summary.requestID)
            return
        }
        guard let frame = try? FrameCodec.decode(bytes, maxFrameBytes: .max) else { return }
        if case .pushAck(let ack) = frame.body, let onAck = hooks.onAck, let socket = state.withLock({ $0.socket }) {
            onAck(frame.requestID, ack, socket)
            return
        }
        if case .serverHello = frame.body {
            deliver(frame, key: Self.helloKey)
        } else {
            deliver(frame, key: frame.requestID)
        }
    }

    private func deliver(_ frame: Cloak_V1_Frame, key: UInt64) {
        let waiter = state.withLock { s in
            guard let waiter = s.waiters.removeValue(forKey: key) else {
                s.early[key] = frame
                return nil as CheckedContinuation<Cloak_V1_Frame, any Error>?
            }
            return waiter
        }
        waiter?.resume(returning: frame)
    }

    func fail() {
        let waiters = state.withLock { s in
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume(throwing: BenchError.failed("connection closed")) }
    }
}

/// One benchmark connection.
final class BenchSocket: Sendable {
    let channel: any Channel
    let inbox: Inbox
    let nonce: [UInt8]
    /// The context of a handler just below the frame encoder: pre-masked frames go from here.
    let raw: NIOLoopBoundBox<ChannelHandlerContext?>

    private init(channel: any Channel, inbox: Inbox, nonce: [UInt8], raw: NIOLoopBoundBox<ChannelHandlerContext?>) {
        self.channel = channel
        self.inbox = inbox
        self.nonce = nonce
        self.raw = raw
    }

    static func connect(port: Int, hooks: Inbox.Hooks = .init()) async throws -> BenchSocket {
        let inbox = Inbox(hooks: hooks)
        let raw = Mutex<NIOLoopBoundBox<ChannelHandlerContext?>?>(nil)
        let upgraded: EventLoopFuture<(any Channel)?> = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<(any Channel)?>(
                        maxFrameSize: 16 << 20,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(MessageHandler(inbox: inbox))
                                let box = NIOLoopBoundBox<ChannelHandlerContext?>.makeEmptyBox(
                                    valueType: ChannelHandlerContext.self, eventLoop: channel.eventLoop)
                                let encoder = try channel.pipeline.syncOperations.handler(type: WebSocketFrameEncoder.self)
                                try channel.pipeline.syncOperations.addHandler(RawWriter(slot: box), position: .before(encoder))
                                raw.withLock { $0 = box }
                                return channel
                            }
                        })
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: "127.0.0.1")
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration<(any Channel)?>(
                        upgradeRequestHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1/sync", headers: headers),
                        upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(nil) })
                    // Frames that arrive in the same read as the 101 response (ServerHello) must be
                    // forwarded, not dropped (NIO's default is .dropBytes).
                    var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                    pipeline.leftOverBytesStrategy = .forwardBytes
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
                }
            }
        guard let channel = try await upgraded.get() else { throw BenchError.failed("no WebSocket upgrade") }
        guard case .serverHello(let hello) = try await inbox.wait(for: Inbox.helloKey).body else {
            throw BenchError.failed("no ServerHello")
        }
        guard let box = raw.withLock({ $0 }) else { throw BenchError.failed("no raw writer") }
        let socket = BenchSocket(channel: channel, inbox: inbox, nonce: Array(hello.nonce), raw: box)
        inbox.attach(socket)
        return socket
    }

    /// Sends one message without waiting.
    func send(_ bytes: [UInt8]) {
        let frame = WebSocketFrame(
            fin: true, opcode: .binary, maskKey: WebSocketMaskingKey([7, 7, 7, 7]), data: ByteBuffer(bytes: bytes))
        _ = channel.writeAndFlush(frame)
    }

    /// Sends a frame built by ``BenchFrames/masked(_:)`` without waiting.
    func send(masked frame: ByteBuffer) {
        if channel.eventLoop.inEventLoop {
            raw.value?.writeAndFlush(NIOAny(frame), promise: nil)
        } else {
            channel.eventLoop.execute { self.raw.value?.writeAndFlush(NIOAny(frame), promise: nil) }
        }
    }

    /// Sends a request and waits for its reply.
    func request(_ bytes: [UInt8], id: UInt64) async throws -> Cloak_V1_Frame {
        async let reply = inbox.wait(for: id)
        send(bytes)
        return try await reply
    }

    /// Registers (if asked) and authenticates as `device`.
    func login(_ account: BenchAccount, device: Int, register: Bool = false) async throws {
        if register {
            guard case .done = try await request(BenchFrames.register(account), id: 1).body else {
                throw BenchError.failed("register refused")
            }
        }
        guard case .authResult = try await request(BenchFrames.authenticate(account, device: device, nonce: nonce, id: 2), id: 2).body
        else { throw BenchError.failed("authentication refused") }
    }

    func close() async {
        try? await channel.close()
    }
}

/// Sits just below the client's frame encoder; its context writes pre-masked frames.
final class RawWriter: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = ByteBuffer
    let slot: NIOLoopBoundBox<ChannelHandlerContext?>

    init(slot: NIOLoopBoundBox<ChannelHandlerContext?>) {
        self.slot = slot
    }

    func handlerAdded(context: ChannelHandlerContext) { slot.value = context }
    func handlerRemoved(context: ChannelHandlerContext) { slot.value = nil }
}

/// Reassembles messages and hands them to the inbox with their arrival time.
final class MessageHandler: ChannelInboundHandler, @unchecked Sendable {
    // Only touched on the channel's event loop.
    typealias InboundIn = WebSocketFrame
    let inbox: Inbox
    private var message: [UInt8] = []

    init(inbox: Inbox) {
        self.inbox = inbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation:
            if message.isEmpty, frame.fin {
                inbox.received(Array(frame.unmaskedData.readableBytesView), at: .now)
                return
            }
            message.append(contentsOf: frame.unmaskedData.readableBytesView)
            if frame.fin {
                inbox.received(message, at: .now)
                message = []
            }
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.fail()
        context.fireChannelInactive()
    }
}

// MARK: - The runs

/// Sizes of the workloads (`scale` 10 divides them for `--quick`).
struct BenchPlan: Sendable {
    let ingestTotal: Int
    let fanoutDevices: Int
    let fanoutPushes: Int
    let idleConnections: [Int]

    init(scale: Int) {
        ingestTotal = 100_000 / scale
        fanoutDevices = 1_000 / scale
        fanoutPushes = 200 / max(scale / 2, 1)
        idleConnections = [1_000 / scale, 5_000 / scale]
    }

    /// Chain length of ingest account `index` in the run with `devices` pushing devices.
    func perDevice(_ devices: Int) -> Int { (ingestTotal + devices - 1) / devices }
}

/// Pre-generated, signed data: the clients' work is done before any timing starts.
struct BenchData: Sendable {
    let ingestAccounts: [BenchAccount]
    let chains: [[[UInt8]]]
    let fanout: BenchAccount
    let fanoutChain: [[UInt8]]

    static func generate(_ plan: BenchPlan) async -> BenchData {
        let accounts = (0..<256).map { BenchAccount(seed: 10_000 + UInt64($0), devices: 1) }
        let lengths = (0..<256).map { index in
            index == 0 ? plan.perDevice(1) : index < 16 ? plan.perDevice(16) : plan.perDevice(256)
        }
        let chains = await withTaskGroup(of: (Int, [[UInt8]]).self) { group in
            for index in 0..<256 {
                group.addTask { (index, accounts[index].chain(device: 0, count: lengths[index], seed: 20_000 + UInt64(index))) }
            }
            var out = [[[UInt8]]](repeating: [], count: 256)
            for await (index, chain) in group { out[index] = chain }
            return out
        }
        let fanout = BenchAccount(seed: 30_000, devices: plan.fanoutDevices)
        return BenchData(
            ingestAccounts: accounts, chains: chains, fanout: fanout,
            fanoutChain: fanout.chain(device: 0, count: plan.fanoutPushes, seed: 30_001))
    }
}

/// Counts acknowledged change sets of an ingest run and keeps each device's pipeline full.
final class IngestTracker: Sendable {
    private struct State {
        var next: [Int]
        var acknowledged = 0
        var rejected = 0
        var waiter: CheckedContinuation<Void, Never>?
    }

    let frames: [[ByteBuffer]]
    let total: Int
    private let state: Mutex<State>

    init(frames: [[ByteBuffer]], total: Int) {
        self.frames = frames
        self.total = total
        state = Mutex(State(next: frames.map { _ in 0 }))
    }

    /// The first `window` pushes of each device.
    func start(window: Int) -> [(device: Int, frame: ByteBuffer)] {
        state.withLock { s in
            var out: [(Int, ByteBuffer)] = []
            for device in frames.indices {
                let count = min(window, frames[device].count)
                out += frames[device][0..<count].map { (device, $0) }
                s.next[device] = count
            }
            return out
        }
    }

    /// Records an ack and returns the device's next push, if any.
    func acknowledged(device: Int, _ ack: Cloak_V1_PushAck) -> ByteBuffer? {
        let (next, waiter) = state.withLock { s -> (ByteBuffer?, CheckedContinuation<Void, Never>?) in
            let accepted = ack.results.filter { $0.error == .unspecified }.count
            s.acknowledged += accepted
            s.rejected += ack.results.count - accepted
            var next: ByteBuffer?
            if s.next[device] < frames[device].count {
                next = frames[device][s.next[device]]
                s.next[device] += 1
            }
            guard s.acknowledged + s.rejected >= total, let waiter = s.waiter else { return (next, nil) }
            s.waiter = nil
            return (next, waiter)
        }
        waiter?.resume()
        return next
    }

    func finished() async -> (acknowledged: Int, rejected: Int) {
        await withCheckedContinuation { continuation in
            let done = state.withLock { s in
                if s.acknowledged + s.rejected >= total { return true }
                s.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
        return state.withLock { ($0.acknowledged, $0.rejected) }
    }
}

/// Arrival times of live deliveries (cursor, time), from every receiving connection.
final class DeliveryLog: Sendable {
    private let entries = Mutex<[(UInt64, ContinuousClock.Instant)]>([])
    private let items = Atomic<Int>(0)

    func record(_ summary: DeliverSummary, at instant: ContinuousClock.Instant) {
        guard summary.requestID == 0 else { return }
        entries.withLock { $0.append((summary.lastCursor, instant)) }
        items.add(summary.count, ordering: .relaxed)
    }

    var count: Int { items.load(ordering: .relaxed) }
    var all: [(UInt64, ContinuousClock.Instant)] { entries.withLock { $0 } }
}

/// Where a run's fresh database comes from.
enum BenchStore: Sendable {
    case sqlite
    case postgres(url: String)

    var label: String {
        switch self {
        case .sqlite: "sqlite"
        case .postgres: "postgres"
        }
    }

    /// A new, empty database location and how to remove it.
    func fresh() async throws -> (location: String, remove: @Sendable () async -> Void) {
        let name = "cloak_bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(name)
            return ("sqlite:" + directory.appendingPathComponent("cloak.sqlite").path, {
                try? FileManager.default.removeItem(at: directory)
            })
        case .postgres(let url):
            try await Self.admin(url, "CREATE DATABASE \(name)")
            var components = URLComponents(string: url)
            components?.path = "/" + name
            return (components?.string ?? url, { try? await Self.admin(url, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") })
        }
    }

    static func admin(_ url: String, _ sql: String) async throws {
        guard let components = URLComponents(string: url), let host = components.host else {
            throw BenchError.failed("bad PostgreSQL URL")
        }
        let client = PostgresClient(
            configuration: .init(
                host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
                password: components.password, database: components.path.split(separator: "/").first.map(String.init),
                tls: .disable),
            backgroundLogger: Logger(label: "cloak-bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await client.query(PostgresQuery(unsafeSQL: sql))
        }
    }

    /// The PostgreSQL to use, if one answers.
    static func postgres() async -> BenchStore? {
        let environment = ProcessInfo.processInfo.environment
        let url =
            environment["CLOAK_BENCH_POSTGRES_URL"] ?? environment["CLOAK_TEST_POSTGRES_URL"]
            ?? "postgres://postgres:cloak-test@127.0.0.1:5433/postgres"
        do {
            try await admin(url, "SELECT 1")
            return .postgres(url: url)
        } catch {
            return nil
        }
    }
}

struct ServerBenchmark: Sendable {
    let plan: BenchPlan
    let phases: Set<String>

    init(scale: Int, phases: Set<String>) {
        plan = BenchPlan(scale: scale)
        self.phases = phases
    }

    func run() async throws -> BenchReport {
        var report = BenchReport(suite: "server")
        log("server: generating and signing the workloads (not timed)…")
        let data = await BenchData.generate(plan)
        let size = data.chains[0].reduce(0) { $0 + $1.count } / max(data.chains[0].count, 1)
        report.add("change_set_bytes", Double(size), unit: "bytes", note: "1 KiB ciphertext + header, signature, framing")
        try await run(.sqlite, data, &report)
        if phases.contains("floor") {
            // Right after the SQLite phases, so it compares with their fanout in one sitting.
            log("server: fanout floor: a bare SwiftNIO relay, the same workload")
            let (cpu, deliveries) = try await FanoutFloor.measure()
            report.add(
                "floor.fanout.swiftnio_relay.server_cpu_per_delivery", cpu, unit: "µs",
                note: "\(deliveries) deliveries; no protocol, no store")
            // The ratio is what stays comparable across runs on this shared machine: both sides
            // pay the same kernel loopback send, which moves with the machine's load.
            if let ours = report.rows.first(where: { $0.name == "sqlite.fanout.server_cpu_per_delivery" }), cpu > 0 {
                report.add(
                    "sqlite.fanout.server_cpu_per_delivery_over_floor", ours.value / cpu, unit: "×",
                    note: "Cloak's fanout CPU over the bare relay's, same sitting")
            }
        }
        if let postgres = await BenchStore.postgres() {
            try await run(postgres, data, &report)
        } else {
            log("server: PostgreSQL not reachable (set CLOAK_BENCH_POSTGRES_URL or run scripts/postgres start): skipped")
        }
        return report
    }

    private func run(_ store: BenchStore, _ data: BenchData, _ report: inout BenchReport) async throws {
        let label = store.label
        for devices in [1, 16, 256] where phases.contains("ingest\(devices)") {
            let (database, remove) = try await store.fresh()
            let child = try await ChildServer.start(database: database)
            let (rate, cpu) = try await ingest(child, data, devices: devices)
            report.add(
                "\(label).ingest.\(devices)_devices", rate, unit: "change sets/s",
                note: label == "sqlite" ? "target ≥ 50,000" : "")
            report.add("\(label).ingest.\(devices)_devices.server_cpu_per_change_set", cpu * 1e6, unit: "µs")
            if devices == 1 {
                let (catchUpRate, catchUpCPU) = try await catchUp(child, data.ingestAccounts[0], expected: data.chains[0].count)
                report.add("\(label).catchup.\(data.chains[0].count)", catchUpRate, unit: "change sets/s", note: label == "sqlite" ? "target ≥ 200,000" : "")
                report.add("\(label).catchup.server_cpu_per_delivery", catchUpCPU * 1e6, unit: "µs", note: label == "sqlite" ? "target ≤ 10" : "")
            }
            log("server: stopping child")
            await child.stop()
            log("server: stopped")
            await remove()
        }
        if phases.contains("fanout") { try await fanout(store, data, &report) }
        if phases.contains("shared"), case .postgres = store { try await fanout(store, data, &report, acrossProcesses: true) }
        if phases.contains("memory") { try await idleMemory(store, data, &report) }
    }

    /// Change sets acknowledged per second with `devices` devices pushing 64-change-set pushes,
    /// four in flight each; and the server's CPU seconds per acknowledged change set.
    private func ingest(_ child: ChildServer, _ data: BenchData, devices: Int) async throws -> (Double, Double) {
        let perDevice = plan.perDevice(devices)
        let frames = (0..<devices).map { device in
            stride(from: 0, to: perDevice, by: 64).enumerated().map { n, start in
                BenchFrames.masked(BenchFrames.push(data.chains[device][start..<min(start + 64, perDevice)], id: 100 + UInt64(n)))
            }
        }
        let tracker = IngestTracker(frames: frames, total: perDevice * devices)
        var sockets: [BenchSocket] = []
        log("server: ingest with \(devices) devices: connecting")
        for device in 0..<devices {
            let hooks = Inbox.Hooks(onAck: { _, ack, socket in
                if let next = tracker.acknowledged(device: device, ack) { socket.send(masked: next) }
            })
            let socket = try await BenchSocket.connect(port: child.port, hooks: hooks)
            log("server:   device \(device) connected")
            try await socket.login(data.ingestAccounts[device], device: 0, register: true)
            log("server:   device \(device) logged in")
            sockets.append(socket)
        }
        let cpu = child.cpuSeconds
        let start = ContinuousClock.now
        for (device, frame) in tracker.start(window: 4) { sockets[device].send(masked: frame) }
        let (acknowledged, rejected) = await tracker.finished()
        let elapsed = (ContinuousClock.now - start).seconds
        let used = child.cpuSeconds - cpu
        if rejected > 0 { log("server: \(rejected) change sets rejected during ingest") }
        for socket in sockets { await socket.close() }
        return (Double(acknowledged) / elapsed, used / Double(max(acknowledged, 1)))
    }

    /// A second connection of the ingest device subscribing from cursor 0.
    private func catchUp(_ child: ChildServer, _ account: BenchAccount, expected: Int) async throws -> (Double, Double) {
        let received = ItemCount()
        let socket = try await BenchSocket.connect(
            port: child.port, hooks: Inbox.Hooks(onDeliver: { summary, _ in received.add(summary.count) }))
        try await socket.login(account, device: 0)
        let cpu = child.cpuSeconds
        let start = ContinuousClock.now
        _ = try await socket.request(BenchFrames.subscribe(after: 0, id: 9), id: 9)
        let elapsed = (ContinuousClock.now - start).seconds
        let used = child.cpuSeconds - cpu
        let count = received.value
        if count != expected { log("server: catch-up delivered \(count) of \(expected)") }
        await socket.close()
        return (Double(count) / elapsed, used / Double(max(count, 1)))
    }
}

/// CPU seconds (user and system, all threads) of process `pid`, or of this one (the load
/// generator) for `self`, from /proc/PID/stat.
func processCPUSeconds(_ pid: String = "self") -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// A shared counter.
final class ItemCount: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ n: Int) { count.add(n, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

extension ServerBenchmark {
    /// Registers the fanout account and uploads its device log (appends pipelined).
    private func setUpFanoutAccount(_ child: ChildServer, _ account: BenchAccount) async throws -> BenchSocket {
        let owner = try await BenchSocket.connect(port: child.port)
        try await owner.login(account, device: 0, register: true)
        let entries = account.log.entries.dropFirst()
        for entry in entries { owner.send(BenchFrames.append(entry, id: 1_000 + entry.index)) }
        if let last = entries.last {
            guard case .done = try await owner.inbox.wait(for: 1_000 + last.index).body else {
                throw BenchError.failed("device log upload refused")
            }
        }
        return owner
    }

    /// Connects and subscribes `count` receivers (cycling through devices 1…N−1), 32 at a time.
    private func receivers(
        _ child: ChildServer, _ account: BenchAccount, count: Int, offset: Int, hooks: Inbox.Hooks
    ) async throws -> [BenchSocket] {
        let devices = account.keys.count - 1
        return try await withThrowingTaskGroup(of: BenchSocket.self) { group in
            var sockets: [BenchSocket] = []
            for n in 0..<count {
                if n >= 32, let socket = try await group.next() { sockets.append(socket) }
                let device = 1 + (offset + n) % devices
                group.addTask {
                    let socket = try await BenchSocket.connect(port: child.port, hooks: hooks)
                    log("  receiver \(n) connected")
                    try await socket.login(account, device: device)
                    log("  receiver \(n) logged in")
                    _ = try await socket.request(BenchFrames.subscribe(after: 0, id: 3), id: 3)
                    log("  receiver \(n) subscribed")
                    return socket
                }
            }
            for try await socket in group { sockets.append(socket) }
            return sockets
        }
    }

    /// Push-to-receipt latency on every other device of a 1,000-device account (open-loop
    /// pushes, 25 per second), and the server's CPU per delivered change set. `acrossProcesses`
    /// (PostgreSQL): the receivers are connected to a second server process on the same database,
    /// so every delivery goes through NOTIFY and a fanout read; CPU is both processes'.
    func fanout(_ store: BenchStore, _ data: BenchData, _ report: inout BenchReport, acrossProcesses: Bool = false)
        async throws
    {
        let (database, remove) = try await store.fresh()
        let child = try await ChildServer.start(database: database)
        let other = acrossProcesses ? try await ChildServer.start(database: database) : child
        let account = data.fanout
        let sentAt = Mutex<[UInt64: ContinuousClock.Instant]>([:])
        let cursorOf = Mutex<[UInt64: UInt64]>([:])
        let ackedAt = Mutex<[UInt64: ContinuousClock.Instant]>([:])
        let deliveries = DeliveryLog()
        log("server: fanout: uploading the device log")
        let owner = try await setUpFanoutAccount(child, account)
        log("server: fanout: connecting receivers")
        let pusher = try await BenchSocket.connect(
            port: child.port, hooks: Inbox.Hooks(onAck: { id, ack, _ in
                let now = ContinuousClock.now
                cursorOf.withLock { $0[ack.results.first?.cursor ?? 0] = id }
                ackedAt.withLock { $0[id] = now }
            }))
        try await pusher.login(account, device: 0)
        log("server: fanout: pusher ready")
        let listeners = try await receivers(
            other, account, count: account.keys.count - 1, offset: 0,
            hooks: Inbox.Hooks(onDeliver: { summary, at in deliveries.record(summary, at: at) }))
        let expected = data.fanoutChain.count * listeners.count
        let pushes = data.fanoutChain.enumerated().map { n, changeSet in
            BenchFrames.masked(BenchFrames.push([changeSet][...], id: 10_000 + UInt64(n)))
        }
        log("server: fanout: pushing")
        let cpu = child.cpuSeconds + (acrossProcesses ? other.cpuSeconds : 0)
        let clientCPU = processCPUSeconds()
        for (n, push) in pushes.enumerated() {
            sentAt.withLock { $0[10_000 + UInt64(n)] = .now }
            pusher.send(masked: push)
            try await Task.sleep(for: .milliseconds(40))
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while deliveries.count < expected, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let used = child.cpuSeconds + (acrossProcesses ? other.cpuSeconds : 0) - cpu
        let clientUsed = processCPUSeconds() - clientCPU
        let sent = sentAt.withLock { $0 }
        let cursors = cursorOf.withLock { $0 }
        var perPush: [UInt64: (first: Double, last: Double)] = [:]
        let latencies = deliveries.all.compactMap { cursor, at -> Double? in
            guard let id = cursors[cursor], let start = sent[id] else { return nil }
            let latency = (at - start).seconds * 1000
            let seen = perPush[id] ?? (latency, latency)
            perPush[id] = (min(seen.first, latency), max(seen.last, latency))
            return latency
        }.sorted()
        // Where the time goes: the durable commit (push to ack) and writing one change set out
        // to every receiver (first to last arrival of the same push).
        let acked = ackedAt.withLock { $0 }
        let commits = acked.compactMap { id, at in sent[id].map { (at - $0).seconds * 1000 } }.sorted()
        let spreads = perPush.values.map { $0.last - $0.first }.sorted()
        let label = store.label + (acrossProcesses ? ".across_processes" : "")
        let name = "\(label).fanout.\(account.keys.count)_devices"
        let target = label == "sqlite"
        report.add("\(name).p50", percentile(latencies, 0.50), unit: "ms")
        report.add("\(name).p99", percentile(latencies, 0.99), unit: "ms", note: target ? "target ≤ 20" : "")
        report.add("\(name).p999", percentile(latencies, 0.999), unit: "ms")
        report.add("\(name).deliveries", Double(deliveries.count), unit: "change sets", note: "of \(expected)")
        report.add("\(name).push_to_ack.p50", percentile(commits, 0.50), unit: "ms", note: "durable commit")
        report.add("\(name).push_to_ack.p99", percentile(commits, 0.99), unit: "ms")
        report.add("\(name).first_to_last_arrival.p50", percentile(spreads, 0.50), unit: "ms", note: "one push, every receiver")
        report.add("\(name).first_to_last_arrival.p99", percentile(spreads, 0.99), unit: "ms")
        report.add(
            "\(label).fanout.server_cpu_per_delivery", used / Double(max(deliveries.count, 1)) * 1e6, unit: "µs",
            note: target ? "target ≤ 10 (NATS 3–7, pycrdt-websocket 91)" : "")
        // The receivers share the machine's cores with the server: a push reaches its last
        // receiver only after both have spent their CPU on every delivery.
        report.add(
            "\(label).fanout.client_cpu_per_delivery", clientUsed / Double(max(deliveries.count, 1)) * 1e6, unit: "µs",
            note: "this load generator's receivers, same cores")
        for socket in listeners { await socket.close() }
        await pusher.close()
        await owner.close()
        await child.stop()
        if acrossProcesses { await other.stop() }
        await remove()
    }

    /// Resident memory per idle, authenticated, subscribed connection at 1,000 and 5,000.
    func idleMemory(_ store: BenchStore, _ data: BenchData, _ report: inout BenchReport) async throws {
        let (database, remove) = try await store.fresh()
        let child = try await ChildServer.start(database: database)
        let account = data.fanout
        let owner = try await setUpFanoutAccount(child, account)
        _ = try await owner.request(BenchFrames.subscribe(after: 0, id: 3), id: 3)
        try await Task.sleep(for: .seconds(1))
        let baseline = child.residentBytes
        var open: [BenchSocket] = []
        for target in plan.idleConnections {
            open += try await receivers(child, account, count: target - open.count, offset: open.count, hooks: .init())
            try await Task.sleep(for: .seconds(2))
            let perConnection = Double(child.residentBytes - baseline) / Double(open.count) / 1024
            report.add(
                "\(store.label).memory.idle_connection.\(target)", perConnection, unit: "KiB",
                note: store.label == "sqlite" ? "target ≤ 32" : "")
        }
        for socket in open { await socket.close() }
        await owner.close()
        await child.stop()
        await remove()
    }
}
