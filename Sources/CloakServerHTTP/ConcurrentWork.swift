import CloakServer
import Dispatch
import Foundation

/// Spreads a request's independent pieces (a push's signature checks) over the machine's
/// cores with `DispatchQueue.concurrentPerform`, so one device's push is not limited to one
/// core's Ed25519 verification rate.
struct ConcurrentWork: WorkSpreader {
    let cores = max(ProcessInfo.processInfo.activeProcessorCount, 1)

    func map<T: Sendable>(_ count: Int, _ transform: @Sendable (Int) -> T) -> [T] {
        guard count > 1, cores > 1 else { return (0..<count).map(transform) }
        var results = [T?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { buffer in
            let slots = Slots(base: buffer)
            // A few contiguous slices per core: enough to balance, few enough to stay cheap.
            let slices = min(count, cores * 4)
            DispatchQueue.concurrentPerform(iterations: slices) { slice in
                for index in (slice * count / slices)..<((slice + 1) * count / slices) {
                    slots.base[index] = transform(index)
                }
            }
        }
        return results.compactMap { $0 }
    }
}

/// The result buffer shared by the slices. `@unchecked Sendable` because the slices write
/// disjoint indexes and `concurrentPerform` returns only after all of them finished, so no
/// slot is ever touched by two threads or read before it was written.
private struct Slots<T>: @unchecked Sendable {
    let base: UnsafeMutableBufferPointer<T?>
}
