import Foundation

/// The system wall clock (the only place the client reads real time; everything else receives
/// it through ``WallClock`` so tests and the simulator can replace it).
public struct SystemWallClock: WallClock {
    /// Creates the system clock.
    public init() {}

    /// Milliseconds since the Unix epoch.
    public func nowMillis() -> UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1000))  // tidy:allow the injected clock's real implementation
    }
}
