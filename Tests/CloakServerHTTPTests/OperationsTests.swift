@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import CloakServer
@_spi(Randomness) import CloakServerHTTP
@_spi(Randomness) import CloakTesting
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// Health, readiness, metrics and graceful shutdown.
@Suite(.timeLimit(.minutes(2))) struct OperationsTests {
    @Test func healthReadinessAndMetrics() async throws {
        try await withServer { server in
            #expect(try await httpGet(port: server.port, path: "/healthz") == (200, "ok\n"))
            #expect(try await httpGet(port: server.port, path: "/readyz") == (200, "ready\n"))
            var account = TestAccount.make(seed: 600)
            let client = try await WebSocketTestClient.connect(port: server.port)
            #expect(try await client.login(account, register: true))
            try await client.send(Frames.push([account.next(in: conversation(1))], id: 3))
            _ = try await client.reply()
            try await client.send([0xFF])
            _ = try await client.untilClosed()
            let metrics = try await httpGet(port: server.port, path: "/metrics")
            #expect(metrics.status == 200)
            for line in [
                "cloak_pushes_total 1", "cloak_acks_total 1", "cloak_change_sets_accepted_total 1",
                "cloak_errors_total{code=\"malformed_frame\"} 1", "cloak_commit_latency_seconds_count",
                "cloak_frames_in_total", "cloak_frames_out_total", "cloak_connections",
            ] {
                #expect(metrics.body.contains(line), "\(line)")
            }
            // Nothing secret or stored is in the metrics.
            #expect(!metrics.body.contains(account.account.hex))
        }
    }

    @Test func gracefulShutdownFinishesCommitsAndClosesWithShuttingDown() async throws {
        let store = InMemoryServerStore()
        let server = CloakHTTPServer(
            configuration: HTTPServerConfiguration(port: 0), store: store, logger: quietLogger, random: DeterministicRandom(seed: 1))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let group = ServiceGroup(services: try server.services { continuation.yield($0) }, logger: quietLogger)
        let running = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        var account = TestAccount.make(seed: 601)
        let client = try await WebSocketTestClient.connect(port: port)
        #expect(try await client.login(account, register: true))
        try await client.send(Frames.push([account.next(in: conversation(1))], id: 3))
        #expect(try await client.reply().pushAckBody?.results.first?.cursor == 1)
        await group.triggerGracefulShutdown()
        let (frames, code) = try await client.untilClosed()
        #expect(frames.last?.errorCode == .shuttingDown)
        #expect(code == 1001)
        try await running.value
        let stored = try await store.changeSets(
            ChangeSetQuery(account: account.account, afterCursor: 0, throughCursor: 10, limit: 10, maxBytes: 1 << 20))
        #expect(stored.count == 1)
    }

    @Test func servesTLSWithTheGivenCertificate() async throws {
        try await Self.withCertificate { cert, key in
            try await withServer({ $0.tls = (cert, key) }) { server in
                let response = try await tlsGet(port: server.port, path: "/healthz")
                #expect(response.hasPrefix("HTTP/1.1 200"))
                #expect(response.hasSuffix("ok\n"))
            }
        }
    }

    /// Sync frames are written below the WebSocket encoder: on wss:// they must still go through
    /// TLS (ServerHello, acks and a fanned-out change set all arrive decrypted and intact).
    @Test func syncsOverTLS() async throws {
        try await Self.withCertificate { cert, key in
            try await withServer({ $0.tls = (cert, key) }) { server in
                var account = TestAccount.make(seed: 611, devices: 2)
                let pusher = try await WebSocketTestClient.owner(of: account, port: server.port, tls: true)
                let reader = try await WebSocketTestClient.subscriber(of: account, port: server.port, tls: true)
                let changeSet = account.next(in: conversation(1))
                try await pusher.send(Frames.push([changeSet], id: 4))
                #expect(try await pusher.reply().pushAckBody?.results.first?.cursor == 1)
                #expect(try await reader.reply().deliverBody.map { Array($0.items[0].changeSet) } == changeSet.wire)
                await pusher.close()
                await reader.close()
            }
        }
    }

    /// A `CLOAK_…` variable that does not parse stops the server with a message naming it,
    /// instead of silently running with the default.
    @Test(arguments: [
        ("CLOAK_MAX_FRAME_BYTES", "10 MBytes"), ("CLOAK_PORT", "eighty"), ("CLOAK_VERIFY_CHANGE_SET_SIGNATURES", "yes"),
    ])
    func malformedEnvironmentVariablesAreRefused(name: String, value: String) async throws {
        let process = Process()
        process.executableURL = try ServerProcess.binary()
        process.arguments = ["serve", "--port", "0", "--database", "memory:"]
        process.environment = ProcessInfo.processInfo.environment.merging([name: value]) { $1 }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Blocking reads stay off the cooperative pool, where in-process servers of other tests run.
        let message = try await onOwnThread {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return text
        }
        #expect(process.terminationStatus != 0)
        #expect(message.contains(name) && message.contains(value), "\(message)")
    }

    /// A self-signed certificate and key for 127.0.0.1 in a temporary directory.
    private static func withCertificate(_ body: (String, String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        try makeTestCertificate(commonName: "127.0.0.1", cert: cert, key: key)
        try await body(cert, key)
    }
}

/// What the operator watches: every metric family described, process and build figures, every
/// error code present from the start, and a database outage that is one log line.
@Suite(.timeLimit(.minutes(2))) struct ObservabilityTests {
    @Test func everyFamilyHasHelpAndTheProcessAndBuildAreThere() async throws {
        try await withServer { server in
            let metrics = try await httpGet(port: server.port, path: "/metrics").body
            let families = metrics.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
            #expect(families.count > 20)
            for family in families { #expect(metrics.contains("# HELP \(family) "), "no HELP for \(family)") }
            for line in [
                "cloak_errors_total{code=\"cursor_mismatch\"} 0", "cloak_errors_total{code=\"account_blocked\"} 0",
                "cloak_build_info{version=\"\(ServerBuild.version)\",protocol=\"1\"} 1", "process_resident_memory_bytes",
                "process_open_fds", "process_start_time_seconds", "process_cpu_seconds_total", "cloak_store_up 1",
            ] {
                #expect(metrics.contains(line), "\(line)")
            }
            #expect(!metrics.contains("code=\"cursorMismatch\""))
        }
    }

    @Test func scheduledCompactionRunsAndIsCounted() async throws {
        try await withServer({ $0.compactEveryMs = 100 }) { server in
            var runs = 0
            for _ in 0..<100 where runs < 2 {
                try await Task.sleep(for: .milliseconds(50))
                let metrics = try await httpGet(port: server.port, path: "/metrics").body
                let line = metrics.split(separator: "\n").first { $0.hasPrefix("cloak_compactions_total ") }
                runs = line.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
            }
            #expect(runs >= 2)
        }
    }

    @Test func aDatabaseOutageIsOneLogLineAndReadinessFailsUntilItEnds() async throws {
        let store = InMemoryServerStore()
        let lines = LogLines()
        var logger = Logger(label: "cloak.test") { _ in lines }
        logger.logLevel = .info
        var configuration = HTTPServerConfiguration(port: 0)
        configuration.usageInterval = .milliseconds(100)
        try await CloakHTTPServer.withRunning(configuration: configuration, store: store, logger: logger) { server in
            #expect(try await httpGet(port: server.port, path: "/readyz").status == 200)
            store.setOutage(true)
            #expect(try await httpGet(port: server.port, path: "/readyz").status == 503)
            // Probes meanwhile back off (1 s, 2 s …) and stay quiet.
            try await Task.sleep(for: .milliseconds(1_500))
            store.setOutage(false)
            for _ in 0..<100 where !lines.contains("answers again") { try await Task.sleep(for: .milliseconds(50)) }
            #expect(try await httpGet(port: server.port, path: "/readyz").status == 200)
        }
        let errors = lines.all.filter { $0.level >= .error }
        #expect(errors.count == 1, "\(errors.map(\.message))")
        #expect(errors.first?.message.contains("The database cannot be reached or opened") == true)
        #expect(lines.contains("The database answers again"))
    }
}

/// Collects log lines (a test's log handler).
final class LogLines: LogHandler, @unchecked Sendable {
    // Guarded by `lock`; @unchecked because LogHandler needs a class with mutable properties.
    private let lock = NSLock()
    private var lines: [(level: Logger.Level, message: String)] = []
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lock.withLock { lines.append((event.level, "\(event.message)")) }
    }

    var all: [(level: Logger.Level, message: String)] { lock.withLock { lines } }

    func contains(_ text: String) -> Bool { all.contains { $0.message.contains(text) } }
}

/// Writes a self-signed P-256 certificate for `commonName` and its key (PEM), valid one day.
func makeTestCertificate(commonName: String, cert: String, key: String) throws {
    let openssl = Process()
    openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    openssl.arguments = [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-subj", "/CN=\(commonName)", "-keyout", key, "-out", cert,
    ]
    openssl.standardOutput = FileHandle.nullDevice
    openssl.standardError = FileHandle.nullDevice
    try openssl.run()
    openssl.waitUntilExit()
    try #require(openssl.terminationStatus == 0, "openssl could not make a test certificate")
}
