import CloakClient
@_spi(Randomness) import CloakCrypto
import CloakProtocol
import Foundation
import Synchronization

/// The live mode (`cloak-sim live`): real ``CloakClient``s over WebSocket against running
/// `cloak-server` processes. Accounts are created and devices linked through the real flows;
/// an open-loop workload then issues operations at a fixed rate for a fixed time, every device
/// reports what it renders, and at the end every account must converge, every accepted
/// operation must be present everywhere, and no canary may appear in the server's database,
/// the devices' stores or their logs.
///
/// ```swift
/// let options = LiveOptions(servers: [url], accounts: 10, devices: 3, durationSeconds: 15, serverDatabase: dbURL)
/// let result = try await LiveSimulation(options: options).run { line in print(line) }
/// print(result.text)        // throughput, latency p50/p99/p999, errors, checks
/// ```
///
/// Bounded: setup has ``LiveOptions/setupSeconds``, the workload stops after
/// ``LiveOptions/durationSeconds`` or ``LiveOptions/operationsMax`` operations, and settling
/// has ``LiveOptions/settleSeconds``. Device stores live in a temporary directory removed at
/// the end.
public struct LiveSimulation: Sendable {
    /// The options.
    public let options: LiveOptions

    /// Prepares a run (nothing connects until ``run(progress:)``).
    public init(options: LiveOptions) {
        self.options = options
    }

    /// Runs it; `progress` gets a one-line status about once a second.
    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> LiveResult {
        guard !options.servers.isEmpty, options.accounts >= 1, options.devices >= 1, options.rate > 0 else {
            throw LiveError("a live run needs a server, at least one account and one device, and a positive rate")
        }
        let recorder = LiveRecorder(run: String(options.seed, radix: 36))
        let root = options.workDirectory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("cloak-live-\(SystemRandom().uniform(1 << 30))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { if options.workDirectory == nil { try? FileManager.default.removeItem(at: root) } }

        let fleet = LiveFleet(options: options, root: root, recorder: recorder)
        let total = options.accounts
        let accounts = try await Deadline.run(seconds: options.setupSeconds, what: "setting up the accounts") {
            try await fleet.setUp { ready in progress("setup: \(ready)/\(total) accounts ready") }
        }
        let setupSeconds = recorder.now() / 1_000
        let devices = accounts.flatMap { $0 }
        let watchers = LiveWatchers(recorder: recorder)
        for device in devices { await watchers.watch(device) }
        for device in devices { await device.client.startSync() }
        await withTaskGroup(of: Void.self) { group in
            for device in devices { group.addTask { _ = await device.client.waitUntilSynced(timeout: .seconds(30)) } }
        }

        let workloadStart = recorder.now()
        await LiveLoad(options: options, recorder: recorder, accounts: accounts).run(since: workloadStart, progress: progress)
        let workloadEnd = recorder.now()
        let convergence = await LiveChecks.awaitConvergence(
            accounts, recorder: recorder, since: workloadEnd, timeoutSeconds: options.settleSeconds
        ) { done in progress("settling: \(done)/\(total) accounts converged") }
        let recorded = recorder.snapshot
        let durability = await LiveChecks.durability(accounts, operations: recorded.acceptedOperations)

        for device in devices { try? await device.client.close() }
        watchers.cancel()
        let scan = LiveChecks.scanCanaries(
            serverFiles: options.serverDatabaseFiles, clientRoot: root, canaries: recorded.nextCanary,
            logLeaks: recorder.snapshot.logLeaks)
        return result(
            recorded, setupSeconds: setupSeconds, workload: (workloadStart, workloadEnd), convergence: convergence,
            durability: durability, scan: scan)
    }

    private func result(
        _ recorded: LiveRecorder.State, setupSeconds: Double, workload: (start: Double, end: Double),
        convergence: [Double?], durability: (failures: [String], count: Int), scan: LiveResult.CanaryScan
    ) -> LiveResult {
        var tracker = recorded.tracker
        tracker.prepare()
        let seconds = max(0.001, (workload.end - workload.start) / 1_000)
        let accepted = recorded.operations.total
        let offset = Int(workload.start / 1_000)
        let checks = LiveVerdicts(
            options: options, accepted: accepted, renders: tracker.renders.total, convergence: convergence,
            durability: durability, scan: scan, alarms: recorded.alarms
        ).checks
        return LiveResult(
            options: .init(options), setupSeconds: setupSeconds, workloadSeconds: seconds, issued: recorded.issued,
            skipped: recorded.skipped, operations: recorded.operations.counts, throughput: Double(accepted) / seconds,
            acceptedPerSecond: Array(recorded.accepted.perSecond.dropFirst(offset)),
            rendersPerSecond: Array(tracker.renders.perSecond.dropFirst(offset)),
            latency: tracker.latency.mapValues(\.summary),
            latencyHistogram: (tracker.latency[RenderTracker.allKinds]?.occupiedBins ?? []).map {
                LiveResult.Bin(label: $0.label, upperMillis: $0.upperMillis, count: $0.count)
            },
            unrendered: tracker.unrendered.counts, apiErrors: recorded.apiErrors.counts,
            serverErrors: recorded.serverErrors.counts, alarms: recorded.alarms.counts, alarmDetails: recorded.alarmDetails,
            convergenceMillis: convergence, canaryScan: scan, checks: checks)
    }
}

/// Each device's observers: the conversation list, every conversation's rendered view, and
/// security events, all reported to the recorder as they arrive. The observation streams are
/// the app-facing hook for "this is now rendered" (``CloakClient/observe(_:)``).
final class LiveWatchers: Sendable {
    let recorder: LiveRecorder
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(recorder: LiveRecorder) { self.recorder = recorder }

    func watch(_ device: LiveDevice) async {
        let recorder = self.recorder
        let client = device.client
        let list = await client.observeConversations()
        let events = await client.securityEvents()
        add(Task { [self] in
            var watched: Set<ConversationID> = []
            for await summaries in list {
                recorder.sighted(RenderTokens.tokens(in: summaries), device: device.index)
                for summary in summaries where watched.insert(summary.id).inserted {
                    let views = await client.observe(summary.id)
                    add(Task {
                        for await view in views { recorder.sighted(RenderTokens.tokens(in: view), device: device.index) }
                    })
                }
            }
        })
        add(Task {
            // A new device announced to its account is a notice every member gets (issue 26),
            // and live mode links every device itself: only the other kinds are alarms here.
            for await event in events where event.kind != .deviceAdded { recorder.alarm(event, device: device.name) }
        })
    }

    private func add(_ task: Task<Void, Never>) { tasks.withLock { $0.append(task) } }

    /// Stops every observer (closing the clients ends their streams too).
    func cancel() {
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }
}

/// Runs work with a time limit. The work runs in its own task: a flow stuck waiting for a
/// server that never answers cannot hold the run past the limit (the process ends anyway).
enum Deadline {
    /// Whichever of the work and the timer finishes first resumes the caller.
    private final class Once: Sendable {
        private let done = Mutex(false)

        func claim() -> Bool {
            done.withLock { done in
                defer { done = true }
                return !done
            }
        }
    }

    static func run<T: Sendable>(seconds: Double, what: String, _ work: @escaping @Sendable () async throws -> T)
        async throws -> T
    {
        let once = Once()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let timer = Task {
                try? await Task.sleep(for: .seconds(seconds))
                guard !Task.isCancelled, once.claim() else { return }
                continuation.resume(throwing: LiveError("\(what) took longer than \(Int(seconds)) s"))
            }
            Task {
                let result: Result<T, any Error>
                do { result = .success(try await work()) } catch { result = .failure(error) }
                timer.cancel()
                if once.claim() { continuation.resume(with: result) }
            }
        }
    }
}
