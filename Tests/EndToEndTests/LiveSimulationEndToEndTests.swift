import CloakSimulation
import CloakTesting
import Foundation
import Logging
import Testing

@Suite("End to end: the live simulator against a real cloak-server process")
struct LiveSimulationEndToEndTests {
    @Test(
        "2 accounts × 2 devices for 3 s on loopback: every check passes, latency is measured, the reports are written",
        .timeLimit(.minutes(3)))
    func liveRun() async throws {
        let root = try temporaryDirectory("live")
        defer { try? FileManager.default.removeItem(at: root) }
        let database = root.appendingPathComponent("server.sqlite")
        let server = try await ServerProcess.start(database: "sqlite:\(database.path)")
        // Every phase of the run is bounded (setup 60 s, workload 3 s, settling 30 s), and the
        // server is stopped by its PID whatever the run did.
        let outcome: Result<LiveResult, any Error>
        do {
            let options = LiveOptions(
                servers: [try #require(URL(string: "ws://127.0.0.1:\(server.port)/v1/sync"))], accounts: 2, devices: 2,
                durationSeconds: 3, rate: 10, serverDatabase: database, settleSeconds: 30, setupSeconds: 60, seed: 24,
                workDirectory: root.appendingPathComponent("devices"))
            outcome = .success(try await LiveSimulation(options: options).run())
        } catch {
            outcome = .failure(error)
        }
        await server.terminate()
        #expect(!server.process.isRunning)
        let result = try outcome.get()

        #expect(result.passed, "\(result.text)")
        #expect(result.checks.map(\.name) == ["liveness", "convergence", "durability", "canaries", "integrity"])
        #expect(result.canaryScan.serverScanned && result.canaryScan.serverBytes > 0)
        #expect(result.canaryScan.clientFiles >= 4 && result.canaryScan.canaries > 0)
        #expect(result.operations.values.reduce(0, +) > 5)
        #expect((result.latency["all"]?.count ?? 0) > 0)
        #expect(result.convergenceMillis.count == 2 && result.convergenceMillis.allSatisfy { $0 != nil })
        // Device stores live in the work directory while the run needs them, and only there.
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("devices/a1.d1/cloak.sqlite").path))

        let json = root.appendingPathComponent("live.json")
        let html = root.appendingPathComponent("live.html")
        try SimulationReport.write(result, json: json, html: html)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any]
        #expect(object?["schema"] as? String == SimulationReport.liveSchema)
        #expect((object?["result"] as? [String: Any])?["checks"] != nil)
        let page = try String(contentsOf: html, encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.contains("id=\"latency-histogram\""))
    }

    @Test(
        "two cloak-server processes on one PostgreSQL database: each account's devices are spread over both, and every check passes",
        .enabled(
            if: PostgresTestDatabase.adminURL != nil,
            "skipped: CLOAK_TEST_POSTGRES_URL is not set (scripts/postgres start prints one)"),
        .timeLimit(.minutes(3)))
    func liveRunOverTwoNodes() async throws {
        var logger = Logger(label: "e2e.live")
        logger.logLevel = .error
        let (url, drop) = try await PostgresTestDatabase.create(logger: logger)
        var servers: [ServerProcess] = []
        let outcome: Result<LiveResult, any Error>
        do {
            for _ in 0..<2 { servers.append(try await ServerProcess.start(database: url)) }
            let options = LiveOptions(
                servers: try servers.map { try #require(URL(string: "ws://127.0.0.1:\($0.port)/v1/sync")) }, accounts: 2,
                devices: 2, durationSeconds: 3, rate: 10, settleSeconds: 30, setupSeconds: 60, seed: 25)
            // Device i talks to server i mod 2: the two devices of each account are on different nodes.
            #expect((0..<4).map { options.server(forDevice: $0) } == [0, 1, 0, 1].map { options.servers[$0] })
            outcome = .success(try await LiveSimulation(options: options).run())
        } catch {
            outcome = .failure(error)
        }
        for server in servers { await server.terminate() }
        await drop()
        #expect(servers.allSatisfy { !$0.process.isRunning })
        let result = try outcome.get()

        #expect(result.passed, "\(result.text)")
        #expect(result.options.servers.count == 2 && !result.canaryScan.serverScanned)
        #expect((result.latency["all"]?.count ?? 0) > 0)
    }
}
