import Foundation
import Synchronization

/// The workload's schedule: an open loop that hands one operation every `1/rate` seconds to a
/// random device until the duration or the operation cap is reached, while each device works
/// through its own short queue. An operation for a device that still has
/// ``queueMax`` waiting is skipped and counted: the schedule never slows down to match the
/// system, so a saturated system shows up as skips and latency rather than a lower rate.
struct LiveLoad {
    let options: LiveOptions
    let recorder: LiveRecorder
    let accounts: [[LiveDevice]]

    /// Operations waiting for one device at most.
    static let queueMax = 2

    /// Runs the workload and returns when every device has finished what it was handed.
    func run(since start: Double, progress: @escaping @Sendable (String) -> Void) async {
        var random = SimRandom(seed: options.seed)
        let devices = accounts.flatMap { $0 }
        let queues = devices.map { _ in DeviceQueue() }
        let finished = Flag()
        await withTaskGroup(of: Void.self) { group in
            for (position, device) in devices.enumerated() {
                let others = accounts[device.account].map(\.index).filter { $0 != device.index }
                let worker = LiveWorker(device: device, others: others, recorder: recorder, random: random.split())
                let queue = queues[position]
                group.addTask {
                    var worker = worker
                    for await _ in queue.stream {
                        await worker.performOne()
                        queue.done()
                    }
                }
            }
            let picks = (0..<min(options.operationsMax, Int(options.rate * options.durationSeconds) + 1)).map { _ in
                random.below(devices.count)
            }
            group.addTask { [options, recorder] in
                let clock = ContinuousClock()
                let begin = clock.now
                let limit = Duration.milliseconds(Int64(options.durationSeconds * 1_000))
                for (number, pick) in picks.enumerated() {
                    let due = Duration.milliseconds(Int64(Double(number) * 1_000 / options.rate))
                    guard due < limit else { break }
                    try? await clock.sleep(until: begin + due)
                    if queues[pick].offer() { recorder.issued() } else { recorder.skipped() }
                }
                for queue in queues { queue.finish() }
                finished.set()
            }
            group.addTask { [recorder] in
                var next = 1.0
                while !finished.isSet {
                    try? await Task.sleep(for: .milliseconds(100))
                    guard (recorder.now() - start) / 1_000 >= next else { continue }
                    next += 1
                    progress(Self.progressLine(recorder, since: start))
                }
            }
        }
    }

    /// "live 7.0 s: 812 ops (116.0/s), renders 1620, p50 32.1 ms p99 210.0 ms, 0 errors, 0 skipped".
    static func progressLine(_ recorder: LiveRecorder, since start: Double) -> String {
        let elapsed = (recorder.now() - start) / 1_000
        let (accepted, renders, latency, errors, skipped) = recorder.state.withLock { s in
            (s.operations.total, s.tracker.renders.total, s.tracker.latency[RenderTracker.allKinds],
             s.apiErrors.total + s.serverErrors.total, s.skipped)
        }
        func ms(_ value: Double?) -> String { value.map { String(format: "%.1f ms", $0) } ?? "-" }
        return String(format: "live %.0f s: %ld ops (%.1f/s), renders %ld, ", elapsed, accepted,
                      elapsed > 0 ? Double(accepted) / elapsed : 0, renders)
            + "p50 \(ms(latency?.percentile(0.5))) p99 \(ms(latency?.percentile(0.99))), \(errors) errors, \(skipped) skipped"
    }
}

/// One device's queue of operations to perform (each element is "do one more").
final class DeviceQueue: Sendable {
    let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let waiting = Mutex(0)

    init() {
        (stream, continuation) = AsyncStream<Void>.makeStream()
    }

    /// Queues an operation unless ``LiveLoad/queueMax`` are already waiting.
    func offer() -> Bool {
        let accepted = waiting.withLock { waiting in
            guard waiting < LiveLoad.queueMax else { return false }
            waiting += 1
            return true
        }
        if accepted { continuation.yield() }
        return accepted
    }

    /// One operation finished.
    func done() { waiting.withLock { $0 -= 1 } }

    /// No more operations will come.
    func finish() { continuation.finish() }
}

/// A one-way flag shared between tasks.
final class Flag: Sendable {
    private let value = Mutex(false)

    func set() { value.withLock { $0 = true } }

    var isSet: Bool { value.withLock { $0 } }
}
