@_spi(Simulation) public import CloakClient
import Synchronization

/// The simulation's time: milliseconds that advance only when the scheduler moves to the next
/// event. Every device and the server read it, so a run never depends on the real clock.
public final class VirtualClock: WallClock {
    private let millis: Mutex<UInt64>

    /// Starts at `start` (ms since the Unix epoch).
    public init(start: UInt64 = 1_800_000_000_000) { millis = Mutex(start) }

    /// The current virtual time.
    public func nowMillis() -> UInt64 { millis.withLock { $0 } }

    /// Moves time forward to `time` (never back).
    func advance(to time: UInt64) { millis.withLock { $0 = max($0, time) } }
}
