import Foundation

/// Runs blocking work (a socket or pipe read) on a thread of its own and awaits its result.
/// Blocking a thread of Swift's cooperative pool instead (two threads on a two-core machine)
/// can starve an in-process server that has to answer the very read that blocks.
///
/// ```swift
/// let bytes = try await onOwnThread { try readToEnd(socket) }
/// ```
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
