@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
public import Logging
import SwiftProtobuf

/// Runs conformance scenarios against a sync server (`Protocol/conformance/README.md`).
///
/// ```swift
/// let runner = ScenarioRunner(server: "ws://127.0.0.1:8080/v1/sync", settings: settings)
/// for scenario in try Scenario.load("Protocol/conformance") {
///     print(scenario.name, await runner.run(scenario))
/// }
/// ```
public struct ScenarioRunner: Sendable {
    /// The server's WebSocket URL (`ws://host:port/v1/sync`).
    public var server: String
    /// What the runner knows of the server's policy.
    public var settings: ConformanceSettings
    /// Stops the server gracefully (`{"operator": "shutdown"}`); nil when the runner cannot.
    public var shutdown: (@Sendable () async throws -> Void)?
    /// 16 bytes mixed into every derived key: fresh per run, so reruns make new accounts.
    public var salt: [UInt8]
    /// Logs connection-level events of the WebSocket client.
    public var logger: Logger

    /// A runner with a fresh random salt.
    public init(
        server: String, settings: ConformanceSettings = ConformanceSettings(),
        shutdown: (@Sendable () async throws -> Void)? = nil, logger: Logger = Logger(label: "cloak.conformance")
    ) {
        self.server = server
        self.settings = settings
        self.shutdown = shutdown
        self.salt = SystemRandom().bytes(16)
        self.logger = logger
    }

    /// Runs one scenario to its end and closes its connections.
    public func run(_ scenario: Scenario) async -> ScenarioOutcome {
        if let reason = unmetRequirement(scenario) { return .skipped(reason) }
        if let reason = await unmetLimit(scenario) { return .skipped(reason) }
        var run = ScenarioRun(runner: self, scenario: scenario)
        defer { run.closeAll() }
        do {
            try await run.steps(scenario.steps, path: "steps")
            return .passed
        } catch let failure as StepFailure {
            return .failed(step: failure.step, reason: failure.reason)
        } catch {
            return .failed(step: "?", reason: "\(error)")
        }
    }

    /// `requires.limits`: the announced limit (read from a probe connection's ServerHello), or
    /// the setting of that name, must be at most `max`.
    private func unmetLimit(_ scenario: Scenario) async -> String? {
        let wanted = scenario.requires["limits"]?.members ?? [:]
        guard !wanted.isEmpty else { return nil }
        var probe = ScenarioRun(runner: self, scenario: scenario)
        defer { probe.closeAll() }
        do { try await probe.steps([.object(["connect": .string("probe")])], path: "probe") } catch {
            return "could not read the server's limits"
        }
        for (name, bound) in wanted.sorted(by: { $0.key < $1.key }) {
            guard let maximum = bound.members["max"]?.integer else { return "limit \(name) has no max" }
            guard let value = try? probe.context.limit(name), value <= maximum else {
                return "needs \(name) ≤ \(maximum)"
            }
        }
        return nil
    }

    private func unmetRequirement(_ scenario: Scenario) -> String? {
        for (name, expected) in scenario.requires["settings"]?.members ?? [:] where settings.values[name] != expected {
            return "needs the server setting \(name) = \(expected.text)"
        }
        if case .array(let operations)? = scenario.requires["operator"], operations.contains(.string("shutdown")),
            shutdown == nil
        {
            return "needs an operator that can stop the server"
        }
        return nil
    }
}

/// A failed step and where it is.
struct StepFailure: Error {
    let step: String
    let reason: String
}

/// One scenario in progress: its model, connections and limits.
struct ScenarioRun {
    let runner: ScenarioRunner
    let scenario: Scenario
    var context: DirectiveContext
    var connections: [String: (connection: ScenarioConnection, nonce: [UInt8])] = [:]
    var limitsKnown = false

    init(runner: ScenarioRunner, scenario: Scenario) {
        self.runner = runner
        self.scenario = scenario
        context = DirectiveContext(
            model: ScenarioModel(salt: runner.salt, scenario: scenario.name), settings: runner.settings)
    }

    func closeAll() {
        for (_, open) in connections { open.connection.close() }
    }

    mutating func steps(_ steps: [JSONValue], path: String) async throws {
        for (index, step) in steps.enumerated() {
            let here = "\(path)[\(index)]"
            do {
                try await self.step(step.members, path: here)
            } catch let failure as StepFailure {
                throw failure
            } catch {
                throw StepFailure(step: "\(here) \(step.text.prefix(160))", reason: "\(error)")
            }
        }
    }

    private func name(_ value: JSONValue?) throws -> String {
        guard var name = value?.string else { throw ConformanceFailure("a connection name is a string") }
        if let iteration = context.iterations.last {
            name = name.replacingOccurrences(of: "{i}", with: String(iteration))
        }
        return name
    }

    private func connection(_ value: JSONValue?) throws -> (connection: ScenarioConnection, nonce: [UInt8]) {
        let name = try name(value)
        guard let open = connections[name] else { throw ConformanceFailure("no connection \(name)") }
        return open
    }

    private mutating func milliseconds(_ value: JSONValue?, default fallback: Int64) throws -> Duration {
        guard let value else { return .milliseconds(fallback) }
        guard let number = try context.evaluate(value).integer else { throw ConformanceFailure("a time is an integer") }
        return .milliseconds(number)
    }

    private mutating func step(_ step: [String: JSONValue], path: String) async throws {
        if let target = step["connect"] {
            try await connect(try name(target))
        } else if let target = step["send"] {
            let open = try connection(target)
            let frame = try context.evaluate(step["frame"] ?? .null, nonce: open.nonce).json
            let decoded: Cloak_V1_Frame
            do { decoded = try Cloak_V1_Frame(jsonString: frame.text) } catch {
                throw ConformanceFailure("the frame is not a cloak.v1.Frame in proto3 JSON: \(error)")
            }
            open.connection.send(.binary(FrameCodec.encode(decoded)))
        } else if let target = step["send_bytes"] {
            guard case .bytes(let bytes) = try context.evaluate(step["bytes"] ?? .null) else {
                throw ConformanceFailure("send_bytes needs a bytes directive")
            }
            try connection(target).connection.send(.binary(bytes))
        } else if let target = step["send_text"] {
            try connection(target).connection.send(.text(step["text"]?.string ?? ""))
        } else if let target = step["expect"] {
            try await expect(try connection(target).connection, step)
        } else if let target = step["expect_close"] {
            try await expectClose(try connection(target).connection, step)
        } else if let target = step["expect_cut_off"] {
            try await expectCutOff(try connection(target).connection, step)
        } else if let target = step["expect_silence"] {
            let quiet = try milliseconds(step["ms"], default: 300)
            if let event = try await connection(target).connection.next(timeout: quiet) {
                throw ConformanceFailure("expected silence, got \(Self.describe(event))")
            }
        } else if let target = step["pause_reading"] ?? step["resume_reading"] {
            try connection(target).connection.setPaused(step["pause_reading"] != nil)
        } else if let target = step["disconnect"] {
            let name = try name(target)
            connections.removeValue(forKey: name)?.connection.close()
        } else if let time = step["wait_ms"] {
            try await Task.sleep(for: try milliseconds(time, default: 0))
        } else if let count = step["repeat"] {
            guard let times = try context.evaluate(count).integer, case .array(let inner)? = step["steps"] else {
                throw ConformanceFailure("repeat needs a count and steps")
            }
            for iteration in 0..<max(0, times) {
                context.iterations.append(iteration)
                defer { context.iterations.removeLast() }
                try await steps(inner, path: "\(path).steps#\(iteration)")
            }
        } else if step["operator"]?.string == "shutdown", let shutdown = runner.shutdown {
            try await shutdown()
        } else {
            throw ConformanceFailure("unknown step")
        }
    }

    private mutating func connect(_ name: String) async throws {
        let connection = try await ScenarioConnection.open(url: runner.server, logger: runner.logger)
        guard case .binary(let bytes)? = try await connection.next(timeout: .seconds(10)),
            let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 64 << 20), frame.requestID == 0,
            case .serverHello(let hello) = frame.body, hello.versions.contains(1), hello.nonce.count == 32
        else {
            throw ConformanceFailure("the first message is not a ServerHello listing version 1 with a 32-byte nonce")
        }
        if !limitsKnown {
            let limits = hello.limits
            context.limits = [
                "max_frame_bytes": Int64(limits.maxFrameBytes),
                "max_change_sets_per_push": Int64(limits.maxChangeSetsPerPush),
                "max_change_set_bytes": Int64(limits.maxChangeSetBytes),
                "max_pushes_per_second": Int64(limits.maxPushesPerSecond),
                "max_account_bytes": Int64(clamping: limits.maxAccountBytes),
                "max_catch_up_batch": Int64(limits.maxCatchUpBatch),
            ]
            limitsKnown = true
        }
        connections[name] = (connection, Array(hello.nonce))
    }

    private mutating func expect(_ connection: ScenarioConnection, _ step: [String: JSONValue]) async throws {
        let timeout = try milliseconds(step["timeout_ms"], default: 10_000)
        if let count = step["count"] {
            guard let total = try context.evaluate(count).integer else {
                throw ConformanceFailure("count is an integer")
            }
            var someMatched = step["some"] == nil
            for index in 0..<total {
                let received = try await nextFrame(connection, timeout: timeout)
                var matcher = Matcher(context: context)
                if let each = step["each"], let reason = try matcher.mismatch(each, received, path: "frame#\(index)") {
                    throw ConformanceFailure(reason)
                }
                if let some = step["some"], try matcher.mismatch(some, received, path: "frame") == nil {
                    someMatched = true
                }
                context = matcher.context
            }
            guard someMatched else { throw ConformanceFailure("none of the \(total) frames matches \"some\"") }
            return
        }
        let pattern = step["frame"] ?? .object([:])
        let skip = step["skip"] == .bool(true)
        while true {
            let received = try await nextFrame(connection, timeout: timeout)
            var matcher = Matcher(context: context)
            let reason = try matcher.mismatch(pattern, received, path: "frame")
            if reason == nil { context = matcher.context }
            guard let reason else { return }
            if !skip { throw ConformanceFailure("\(reason); received \(received.text.prefix(400))") }
        }
    }

    private func nextFrame(_ connection: ScenarioConnection, timeout: Duration) async throws -> JSONValue {
        guard let event = try await connection.next(timeout: timeout) else {
            throw ConformanceFailure("nothing arrived within \(timeout)")
        }
        guard case .binary(let bytes) = event else {
            throw ConformanceFailure("expected a frame, got \(Self.describe(event))")
        }
        let frame: Cloak_V1_Frame
        do { frame = try FrameCodec.decode(bytes, maxFrameBytes: 64 << 20) } catch {
            throw ConformanceFailure("the server sent a message that is not a Frame: \(error)")
        }
        return try ScenarioModel.json(frame)
    }

    private mutating func expectClose(_ connection: ScenarioConnection, _ step: [String: JSONValue]) async throws {
        let timeout = try milliseconds(step["timeout_ms"], default: 10_000)
        guard let event = try await connection.next(timeout: timeout) else {
            throw ConformanceFailure("the server did not close within \(timeout)")
        }
        guard case .closed(let code) = event else {
            throw ConformanceFailure("expected a close, got \(Self.describe(event))")
        }
        if let expected = step["code"]?.integer, Int64(code ?? 0) != expected {
            throw ConformanceFailure("closed with \(code.map(String.init) ?? "no code"), expected \(expected)")
        }
    }

    /// A reader the server gave up on: what was in flight (deliveries, pongs), then the closing
    /// error and close code, or a reset that lost them (the reader was not reading).
    private func expectCutOff(_ connection: ScenarioConnection, _ step: [String: JSONValue]) async throws {
        let timeout = try Self.duration(step["timeout_ms"], default: 30_000)
        let code = step["code"]?.string ?? ""
        var sawError = false
        while true {
            guard let event = try await connection.next(timeout: timeout) else {
                throw ConformanceFailure("the server did not cut the connection off within \(timeout)")
            }
            switch event {
            case .ended:
                return
            case .closed(let status):
                // Without the error first, the reader lost the server's last frames (it was not
                // reading); the close it reports may then be the client library's own.
                if sawError, let expected = step["close"]?.integer, Int64(status ?? 0) != expected {
                    throw ConformanceFailure("closed with \(status.map(String.init) ?? "no code") after \(code)")
                }
                return
            case .text:
                throw ConformanceFailure("a text message")
            case .binary(let bytes):
                let frame = try FrameCodec.decode(bytes, maxFrameBytes: 64 << 20)
                switch frame.body {
                case .deliver?, .pong?, .pushAck?:
                    guard !sawError else { throw ConformanceFailure("a frame after the closing error") }
                case .error(let error)?:
                    guard try ScenarioModel.json(error).members["code"]?.string == code else {
                        throw ConformanceFailure("closing error \(error.code), expected \(code)")
                    }
                    sawError = true
                default:
                    throw ConformanceFailure("unexpected \(Self.describe(event))")
                }
            }
        }
    }

    static func duration(_ value: JSONValue?, default fallback: Int64) throws -> Duration {
        guard let value else { return .milliseconds(fallback) }
        guard let number = value.integer else { throw ConformanceFailure("a time is an integer") }
        return .milliseconds(number)
    }

    static func describe(_ event: ScenarioConnection.Event) -> String {
        switch event {
        case .binary(let bytes):
            if let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 64 << 20),
                let json = try? ScenarioModel.json(frame)
            {
                return "a frame \(json.text.prefix(300))"
            }
            return "a binary message of \(bytes.count) bytes"
        case .text: return "a text message"
        case .closed(let code): return "a close (\(code.map(String.init) ?? "no code"))"
        case .ended: return "the end of the connection"
        }
    }
}
