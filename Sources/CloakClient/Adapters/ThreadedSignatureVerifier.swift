import CloakCrypto
import CloakProtocol
import Foundation

/// The ``SignatureVerifier`` apps get: helper threads verify from the front of a batch ahead of
/// admission (one per spare core). Batches smaller than ``SignatureBatch/parallelThreshold``
/// are verified inline.
@_spi(Simulation)
public struct ThreadedSignatureVerifier: SignatureVerifier {
    /// Creates the verifier.
    public init() {}

    /// Starts helpers for a batch (or verifies inline when it is small).
    public func begin(_ items: [SignatureCheck?]) -> any SignatureVerification {
        guard items.count >= SignatureBatch.parallelThreshold else { return InlineVerification(items) }
        return SignatureBatch(items)
    }
}

/// Verifies the signatures of a batch of received change sets on other cores while the batch
/// is admitted one by one. Ed25519 verification is most of the cost of opening a change set and
/// each one is independent, so helper threads verify from the front of the batch ahead of
/// admission; when admission reaches a change set no helper has taken yet it verifies that one
/// itself, and while a helper holds the one it needs it verifies from the back of the batch
/// instead of waiting. A verdict does not depend on which thread reached it, and admission still
/// consumes them in order, so the result is deterministic.
final class SignatureBatch: SignatureVerification, @unchecked Sendable {
    /// Batches smaller than this are left to admission (a thread costs more than it saves).
    static let parallelThreshold = 4

    /// Cores available, read once: on Linux `activeProcessorCount` reads the cgroup's CPU
    /// quota files on every call, which profiles showed costing more than the helpers saved.
    static let cores = ProcessInfo.processInfo.activeProcessorCount

    private enum State { case pending, taken, valid, invalid }

    private let items: [SignatureCheck?]
    // Guarded by `condition`: NSCondition, because admission may have to wait for a helper to
    // finish the change set it needs next.
    private let condition = NSCondition()
    private var states: [State]
    private var next = 0
    /// Where admission looks for work of its own while a helper holds the item it needs.
    private var back: Int
    private var stopped = false

    /// Starts helpers (one per core beyond the caller's) for `items`; `nil` items (unknown
    /// author) are left to admission.
    init(_ items: [SignatureCheck?]) {
        self.items = items
        states = items.map { $0 == nil ? .invalid : .pending }
        back = items.count - 1
        guard items.count >= Self.parallelThreshold else { return }
        // Threads of their own, not DispatchQueue.concurrentPerform: called from Swift
        // concurrency, whose cooperative threads fill dispatch's pool, concurrentPerform runs
        // everything on the calling thread.
        // One helper per spare core, but not more than the batch can keep busy.
        let helpers = max(1, min(Self.cores - 1, items.count / Self.parallelThreshold))
        for _ in 0..<helpers { Thread { [self] in work() }.start() }
    }

    deinit { finish() }

    /// Whether item `index` carries a valid signature by its key (false for `nil` items).
    ///
    /// Admission is cheaper than a verification, so it soon trails right behind the helpers.
    /// Rather than wait for the one they are on, it verifies from the far end of the batch
    /// meanwhile: both cores verify, and the batch is never slower than one verifier.
    func isValid(_ index: Int) -> Bool {
        condition.lock()
        while states[index] != .valid, states[index] != .invalid {
            let target: Int
            if states[index] == .pending {
                target = index
            } else {
                while back > index, states[back] != .pending { back -= 1 }
                guard back > index else {
                    condition.wait()
                    continue
                }
                target = back
            }
            states[target] = .taken
            condition.unlock()
            let valid = verify(target)
            condition.lock()
            states[target] = valid ? .valid : .invalid
        }
        let valid = states[index] == .valid
        condition.unlock()
        return valid
    }

    /// Tells the helpers to take nothing more.
    func finish() {
        condition.lock()
        stopped = true
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while next < states.count, states[next] != .pending { next += 1 }
            guard !stopped, next < states.count else {
                condition.unlock()
                return
            }
            let index = next
            states[index] = .taken
            condition.unlock()
            let valid = verify(index)
            condition.lock()
            states[index] = valid ? .valid : .invalid
            condition.broadcast()
            condition.unlock()
        }
    }

    private func verify(_ index: Int) -> Bool {
        items[index]?.verify() ?? false
    }
}
