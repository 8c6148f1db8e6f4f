/// A token bucket on the injected clock: `rate` tokens per second, holding at most `rate`
/// (so a burst of one second's allowance is fine, a sustained flood is not; ADV-34).
struct TokenBucket: Sendable {
    private var tokens: Double
    private var updatedAtMs: UInt64
    let rate: Double

    init(ratePerSecond: Int, nowMs: UInt64) {
        rate = Double(max(ratePerSecond, 1))
        tokens = rate
        updatedAtMs = nowMs
    }

    /// Takes one token if there is one.
    mutating func take(nowMs: UInt64) -> Bool {
        if nowMs > updatedAtMs {
            tokens = min(rate, tokens + Double(nowMs - updatedAtMs) * rate / 1000)
            updatedAtMs = nowMs
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// At most `limit` events per sliding window (recovery authentications and fetches, which an
/// attacker would otherwise use to guess or to probe).
struct SlidingWindowLimiter: Sendable {
    private var events: [UInt64] = []
    let limit: Int
    let windowMs: UInt64

    init(limit: Int, windowMs: UInt64) {
        self.limit = limit
        self.windowMs = windowMs
    }

    /// Records an event if the window has room.
    mutating func allow(nowMs: UInt64) -> Bool {
        events.removeAll { $0 + windowMs <= nowMs }
        guard events.count < limit else { return false }
        events.append(nowMs)
        return true
    }

    /// True when every recorded event has left the window (the limiter can be forgotten).
    func isIdle(nowMs: UInt64) -> Bool {
        events.allSatisfy { $0 + windowMs <= nowMs }
    }
}
