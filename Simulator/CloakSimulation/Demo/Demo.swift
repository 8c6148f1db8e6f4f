import CloakClient
import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import CloakTransport
public import Foundation
public import Logging

/// The first multi-device demo (`cloak-sim demo`): three devices of one account, each with its
/// own store directory, write concurrently into two conversations (one with a streamed
/// assistant reply), one goes offline and writes, all reconnect and converge; then the server's
/// database is scanned for the canary strings the demo wrote.
///
/// ```swift
/// let report = try await Demo(options: .init(server: url, databaseFiles: [dbURL])).run()
/// print(report.text)
/// ```
public struct Demo: Sendable {
    /// What to run against.
    public struct Options: Sendable {
        /// The server's WebSocket URL.
        public var server: URL
        /// The server's database files to scan for canaries (SQLite file, -wal, -shm).
        public var databaseFiles: [URL]
        /// Where the devices keep their stores (a fresh temporary directory when nil).
        public var workDirectory: URL?
        /// Tokens in the streamed reply.
        public var streamedTokens: Int
        /// Messages the offline device writes.
        public var offlineMessages: Int

        /// Defaults for the README demo.
        public init(
            server: URL, databaseFiles: [URL] = [], workDirectory: URL? = nil, streamedTokens: Int = 120,
            offlineMessages: Int = 25
        ) {
            self.server = server
            self.databaseFiles = databaseFiles
            self.workDirectory = workDirectory
            self.streamedTokens = streamedTokens
            self.offlineMessages = offlineMessages
        }
    }

    /// The outcome.
    public struct Report: Sendable {
        /// Human-readable output.
        public var text: String
        /// Every device ended with equal state hashes for every conversation.
        public var converged: Bool
        /// Canaries found in the server's database (must be none).
        public var leaks: [CanaryScanner.Finding]
        /// Milliseconds from the offline device's reconnect to convergence.
        public var convergeMillis: Double
    }

    let options: Options
    let logger: Logger

    /// Creates the demo.
    public init(options: Options, logger: Logger = Logger(label: "cloak.demo")) {
        self.options = options
        self.logger = logger
    }

    /// Runs it.
    public func run() async throws -> Report {
        var out = DemoOutput()
        let root = options.workDirectory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("cloak-demo-\(SystemRandom().uniform(1 << 30))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let canaries = Canaries()
        let names = ["phone", "laptop", "tablet"]
        var devices: [CloakClient] = []
        for name in names { devices.append(try openDevice(root.appendingPathComponent(name))) }
        let (phone, laptop, tablet) = (devices[0], devices[1], devices[2])

        out.line("Cloak demo: 3 devices of one account against \(options.server.absoluteString)")
        // The reason is read after the catch: awaiting inside a typed catch crashed the compiler.
        let created: Result<Void, ClientError>
        do { try await phone.createAccount(); created = .success(()) } catch { created = .failure(error) }
        if case .failure(let error) = created {
            guard error == .notConnected else { throw error }
            let reason = await phone.lastConnectionFailure.map { "\($0)" } ?? "no connection could be made"
            throw DemoError.unreachable(server: options.server.absoluteString, reason: reason)
        }
        out.line("phone:  created account \(await phone.accountID?.hex.prefix(16) ?? "")…")
        for (name, device) in [("laptop", laptop), ("tablet", tablet)] {
            let code = try await linkDevice(device, to: phone)
            out.line("\(name): linked (both devices showed security code \(code))")
        }
        for device in devices { await device.startSync() }

        let trip = try await phone.createConversation(title: "Trip to Lisbon \(canaries.make("title"))")
        let recipes = try await laptop.createConversation(title: "Recipe ideas \(canaries.make("title"))")
        try await waitForConversations([trip, recipes], on: devices)

        // Everyone writes at once: the phone asks, the tablet streams the assistant's reply
        // while the laptop and the phone fill the other conversation.
        let ask = try await phone.appendMessage(
            to: trip, role: .user, text: "Plan three days in Lisbon for May. \(canaries.make("prompt"))")
        try await waitForMessage(ask, in: trip, on: tablet)
        async let streamed: Void = streamReply(on: tablet, in: trip, parent: ask, canaries: canaries)
        async let laptopWrites: Void = writeMessages(on: laptop, in: recipes, count: 10, canaries: canaries, prefix: "laptop")
        async let phoneWrites: Void = writeMessages(on: phone, in: recipes, count: 5, canaries: canaries, prefix: "phone")
        _ = try await (streamed, laptopWrites, phoneWrites)
        if try await !waitForConvergence(devices, conversations: [trip], timeout: .seconds(20)) {
            out.line("(the streamed reply is still arriving)")
        }
        try await phone.appendMessage(to: trip, role: .user, text: "Great, add a day trip to Cascais.")

        // The tablet goes offline and keeps writing; the others carry on.
        await tablet.stopSync()
        out.line("tablet: offline; writes \(options.offlineMessages) messages and a reaction")
        try await writeMessages(on: tablet, in: recipes, count: options.offlineMessages, canaries: canaries, prefix: "tablet")
        if let first = await tablet.conversation(recipes)?.messages.first {
            try await tablet.react("👍", to: first.id, in: recipes)
        }
        try await tablet.rename(recipes, to: "Recipes, offline edit \(canaries.make("rename"))")
        try await writeMessages(on: laptop, in: recipes, count: 5, canaries: canaries, prefix: "laptop-later")
        try await tablet.pin(trip)

        let clock = ContinuousClock()
        let started = clock.now
        await tablet.startSync()
        out.line("tablet: back online")
        let converged = try await waitForConvergence(devices, conversations: [trip, recipes], timeout: .seconds(60))
        let elapsed = clock.now - started
        let convergeMillis = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        out.line(converged ? "all devices converged \(String(format: "%.0f", convergeMillis)) ms after the tablet reconnected"
                           : "DEVICES DID NOT CONVERGE within 60 s")
        let authors = Dictionary(uniqueKeysWithValues: zip(devices.map { $0.deviceID.replicaID }, names))
        for (name, device) in zip(names, devices) { await out.render(name, device, authors: authors) }

        let scanner = CanaryScanner(canaries: canaries.all)
        let (leaks, scanned) = try scanner.scan(files: options.databaseFiles)
        out.line("")
        if options.databaseFiles.isEmpty {
            out.line("server database: no file given, not scanned")
        } else {
            out.line("server database: scanned \(scanned) bytes for \(canaries.all.count) canaries (cloak-canary-…) "
                     + "in UTF-8, UTF-16, base64 and hex: \(leaks.isEmpty ? "none found" : "FOUND \(leaks.count)")")
        }
        for leak in leaks { out.line("  LEAK: \(leak)") }
        for device in devices { try await device.close() }
        if options.workDirectory == nil { try? FileManager.default.removeItem(at: root) }
        return Report(text: out.text, converged: converged, leaks: leaks, convergeMillis: convergeMillis)
    }

    private func openDevice(_ directory: URL) throws -> CloakClient {
        var configuration = ClientConfiguration()
        configuration.reconnectMinMillis = 100
        configuration.reconnectMaxMillis = 2000
        return try CloakClient.open(
            directory: directory, server: options.server, transport: WebSocketTransport(logger: logger),
            configuration: configuration, logger: logger)
    }
}
