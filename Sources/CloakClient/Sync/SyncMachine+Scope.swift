import CloakProtocol
import Foundation

extension ClientCore {
    /// This assistant's current scope (nil on a device, or before it holds the log).
    var ownScope: Set<ConversationID>? {
        guard isAssistant, let terms = log?.assistants[me]?.current else { return nil }
        return Set(terms.scope)
    }
}

extension SyncMachine {
    /// PROTOCOL.md §29: a grant that widens this assistant's scope. Its subscription and cursor
    /// were for the old scope, so it would get only what is written in the new conversations
    /// from now on: it fetches their snapshots, then subscribes again from cursor 0 (the server
    /// sends the new scope's history; what it already holds comes again as duplicates).
    mutating func scopeWidened(from before: Set<ConversationID>?, core: ClientCore, now: UInt64) -> [SyncEffect] {
        // No scope before: the assistant is joining, and its bootstrap fetches everything.
        guard let before, !before.isEmpty, let after = core.ownScope else { return [] }
        let added = after.subtracting(before)
        guard !added.isEmpty else { return [] }
        widenedScope.formUnion(added)
        return fetchWidenedScope(now: now)
    }

    /// Starts (or, on a new connection, starts again) the fetch of the widened conversations.
    mutating func fetchWidenedScope(now: UInt64) -> [SyncEffect] {
        guard !widenedScope.isEmpty, wideningRequest == nil, case .syncing = phase else { return [] }
        // Their keys come with the grant: asked for first, so the snapshots can be opened.
        let effects = fetchEnvelopes(now: now)
        var fetch = Cloak_V1_FetchSnapshots()
        fetch.conversationIds = widenedScope.sorted().map { Data($0.bytes) }
        let (id, effect) = send(.fetchSnapshots(fetch), kind: .snapshots, now: now)
        wideningRequest = id
        return effects + [effect]
    }

    /// The widened conversations' snapshots arrived (or were refused): catch up from the start.
    mutating func widenedSnapshotsDone(now: UInt64) -> [SyncEffect] {
        wideningRequest = nil
        widenedScope = []
        return subscribe(after: 0, now: now)
    }
}

extension SyncMachine {
    /// A served device log arrived. An assistant's outbox refused for naming a log entry the
    /// server lost (§29) goes again once the served log moved or its incident closed — not
    /// every half second for ever while no member gives the entry back. If the served log
    /// forks from this assistant's, no server will ever take what names an entry at or after
    /// the fork: those change sets are dropped with a `deviceLogFork` event.
    mutating func servedLogMoved(to length: UInt64, forkedAt: UInt64?, core: ClientCore, now: UInt64) -> [SyncEffect] {
        healing.serverLogLength = length
        guard let waiting = pushAwaitsLog else { return [] }
        if let forkedAt {
            pushAwaitsLog = nil
            return run(core: core, now: now) { try core.dropForkedAway(from: forkedAt) } + pushIfReady(core: core, now: now)
        }
        guard length != waiting || !core.hasOpenLogIncident else { return [] }
        pushAwaitsLog = nil
        return pushIfReady(core: core, now: now)
    }

    /// An assistant's push refused with GAP: its own acknowledged change sets of those chains,
    /// in chain order, are pushed again (once per chain and connection; the server stores what
    /// it lacks and answers the rest as duplicates).
    mutating func queueLostOwnChangeSets(_ refused: Set<ChangeSetHash>, core: ClientCore) {
        guard let outbox = try? core.outboxChangeSets(limit: Int.max >> 1) else { return }
        let chains = Set(outbox.filter { refused.contains($0.hash) && $0.header.author == core.me }.map {
            ChainKey(conversation: $0.header.conversation, author: $0.header.author)
        })
        queueOwnChains(chains, core: core)
    }

    /// Queues the acknowledged change sets of these own chains for a restore push, once per
    /// chain and connection.
    mutating func queueOwnChains(_ chains: Set<ChainKey>, core: ClientCore) {
        guard let outbox = try? core.outboxChangeSets(limit: Int.max >> 1) else { return }
        let unacknowledged = Set(outbox.map(\.hash))
        for chain in chains.sorted(by: { $0.conversation < $1.conversation }) where !resentChains.contains(chain) {
            resentChains.insert(chain)
            resend += (try? core.restoreCandidates(chain, after: 0, unacknowledged: unacknowledged)) ?? []
        }
    }
}
