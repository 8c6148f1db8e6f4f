import CloakProtocol

/// Change sets this device knows exist but does not hold: positions named by a later change set
/// of the chain, by another member's signed head, or by the server's own heads. Each is asked
/// for; one still missing after `withheldAfterMillis` of connected, caught-up time is withheld
/// (ADV-45). Only time while live counts: a laptop asleep or offline accrues none.
struct Expectations {
    struct Wanted: Equatable {
        /// The highest position known to exist.
        var upTo: UInt64
        /// When it was last asked for on the live connection (nil: not on this connection).
        var requestedAt: UInt64?
    }

    private(set) var wanted: [ChainKey: Wanted] = [:]

    /// Notes that `key` reaches at least `seq`.
    mutating func expect(_ key: ChainKey, upTo seq: UInt64) {
        if let known = wanted[key], known.upTo >= seq { return }
        wanted[key] = Wanted(upTo: seq, requestedAt: wanted[key]?.requestedAt)
    }

    /// Lowers what is expected of `key` to `seq` (a removal's cut-off arrived after the
    /// position was first expected); ``review(chains:now:after:)`` then finds it filled.
    mutating func limit(_ key: ChainKey, to seq: UInt64) {
        guard let known = wanted[key], known.upTo > seq else { return }
        wanted[key]?.upTo = seq
    }

    /// `key` was just asked for (a gap re-fetch sent outside a review): its clock starts now
    /// unless it already runs.
    mutating func asked(_ key: ChainKey, at now: UInt64) {
        if wanted[key] != nil, wanted[key]?.requestedAt == nil { wanted[key]?.requestedAt = now }
    }

    /// When ``review(chains:now:after:)`` next has something to do: at once for a position not
    /// asked for on this connection, otherwise when the oldest request becomes overdue; nil
    /// when nothing is wanted. Every review asks again, so this time always moves on.
    func nextReview(after: UInt64) -> UInt64? {
        wanted.values.map { $0.requestedAt.map { $0 + after } ?? 0 }.min()
    }

    /// The connection dropped: requests on it are void, and time stops counting.
    mutating func connectionLost() {
        for key in wanted.keys { wanted[key]?.requestedAt = nil }
    }

    /// What to do now, given the chains held: fetch what was not asked for on this connection,
    /// and report as withheld what stayed missing `after` ms since it was asked for (asking
    /// again). Chains that caught up are dropped and returned as `filled`.
    mutating func review(chains: [ChainKey: ChainPosition], now: UInt64, after: UInt64)
        -> (fetch: [GapRequest], overdue: [GapRequest], filled: [ChainKey])
    {
        var fetch: [GapRequest] = []
        var overdue: [GapRequest] = []
        var filled: [ChainKey] = []
        for (key, item) in wanted.sorted(by: { ($0.key.conversation, $0.key.author) < ($1.key.conversation, $1.key.author) }) {
            let have = chains[key]?.seq ?? 0
            guard have < item.upTo else {
                wanted[key] = nil
                filled.append(key)
                continue
            }
            let gap = GapRequest(conversation: key.conversation, author: key.author, fromSeq: have + 1, toSeq: item.upTo)
            if let asked = item.requestedAt {
                guard now >= asked + after else { continue }
                overdue.append(gap)
            }
            fetch.append(gap)
            wanted[key]?.requestedAt = now
        }
        return (fetch, overdue, filled)
    }

    /// How many change sets are known to be missing per chain, for the sync status.
    func missing(chains: [ChainKey: ChainPosition]) -> [ChainKey: UInt64] {
        var missing: [ChainKey: UInt64] = [:]
        for (key, item) in wanted where item.upTo > (chains[key]?.seq ?? 0) {
            missing[key] = item.upTo - (chains[key]?.seq ?? 0)
        }
        return missing
    }
}
