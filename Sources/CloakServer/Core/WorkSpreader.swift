/// Runs the independent pieces of one request — the signature checks of a push's change sets
/// — one after another, or spread over cores. The core stays synchronous either way (the call
/// returns when every piece ran); the deterministic simulator keeps the default,
/// ``SequentialWork``, and the HTTP adapter spreads over the machine's cores, which is what lets
/// one device's push use more than one core for Ed25519 verification.
///
/// ```swift
/// let registry = SyncRegistry(configuration: c, output: o, metrics: m, logger: l, work: SequentialWork())
/// ```
public protocol WorkSpreader: Sendable {
    /// `transform` of every index in `0..<count`, in index order; the calls may run in any
    /// order and concurrently, and all have finished when this returns.
    func map<T: Sendable>(_ count: Int, _ transform: @Sendable (Int) -> T) -> [T]
}

/// Runs every piece on the calling thread, in order.
public struct SequentialWork: WorkSpreader {
    /// Creates the strategy.
    public init() {}

    /// Transforms each index in order.
    public func map<T: Sendable>(_ count: Int, _ transform: @Sendable (Int) -> T) -> [T] {
        (0..<count).map(transform)
    }
}
