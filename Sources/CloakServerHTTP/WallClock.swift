import Foundation

/// The adapter's clock for the core's `nowMs` (wall-clock milliseconds since the Unix epoch,
/// as ServerHello's `server_time_ms` and mailbox expiry need). Only adapters read clocks.
enum WallClock {
    static var nowMs: UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }
}
