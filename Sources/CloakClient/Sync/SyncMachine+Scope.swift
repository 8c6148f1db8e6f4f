import CloakProtocol
import Foundation
import Logging

extension ClientCore {
    /// This assistant's current scope (nil on a device, or before it holds the log).
    var ownScope: Set<ConversationID>? {
        guard isAssistant, let terms = log?.assistants[me]?.current else { return nil }
        return Set(terms.scope)
    }
}

extension SyncMachine {
    /// PROTOCOL.md §29: a grant that widened this assistant's scope. Its subscription and cursor
    /// were for the old scope, so it would get only what is written in the new conversations
    /// from now on: it fetches their snapshots, then subscribes again from cursor 0 (the server
    /// sends the new scope's history; what it already holds comes again as duplicates). What
    /// is still to fetch is derived from the verified log and durable state
    /// (``ClientCore/unfetchedScope()``), so after a restart — or on a new connection — it is
    /// fetched again until a catch-up from 0 that began after the grant completes.
    mutating func fetchWidenedScope(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard core.isAssistant, wideningRequest == nil, case .syncing = phase, let head = core.log?.headIndex else { return [] }
        // A catch-up from 0 under way covers what was granted when it began.
        let covered = zeroSubscriptionAt ?? 0
        let unfetched = ((try? core.unfetchedScope()) ?? [:]).filter { $0.value > covered }
        guard !unfetched.isEmpty else { return [] }
        // Their keys come with the grant: asked for first, so the snapshots can be opened (one
        // that comes first waits, stored, for its key).
        let effects = fetchEnvelopes(now: now)
        var fetch = Cloak_V1_FetchSnapshots()
        fetch.conversationIds = unfetched.keys.sorted().map { Data($0.bytes) }
        let (id, effect) = send(.fetchSnapshots(fetch), kind: .snapshots, now: now)
        wideningRequest = id
        wideningAt = head
        return effects + [effect]
    }

    /// The widened conversations' snapshots arrived: catch up from the start.
    mutating func widenedSnapshotsDone(now: UInt64) -> [SyncEffect] {
        wideningRequest = nil
        wideningRefusals = 0
        wideningRetryAt = nil
        let effects = subscribe(after: 0, now: now)
        zeroSubscriptionAt = wideningAt
        return effects
    }

    /// The server refused the widened conversations' snapshots. Their change sets still come
    /// (a catch-up from the start), but the history is not recorded as fetched: change sets a
    /// snapshot covers may be compacted away. So the snapshots are asked for again — on the next
    /// log or connection, and on this one after a pause (from five reconnect delays, doubling
    /// with each refusal in a row, at most 64 times that): a widening is never left half done
    /// while the connection lasts. OUT_OF_SCOPE may mean a restriction raced it: the log says.
    mutating func widenedSnapshotsRefused(_ error: ProtocolError, core: ClientCore, now: UInt64) -> [SyncEffect] {
        wideningRequest = nil
        let pause = configuration.reconnectMinMillis * 5 << UInt64(min(wideningRefusals, 6))
        wideningRefusals += 1
        wideningRetryAt = now + pause
        var effects = subscribe(after: 0, now: now)
        if case .outOfScope = error { effects += fetchLog(core: core, now: now) }
        return effects
    }

    /// The pause after a refused widening is over: ask for what is still unfetched.
    mutating func retryWideningIfDue(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard let at = wideningRetryAt, now >= at, wideningRequest == nil else { return [] }
        wideningRetryAt = nil
        return fetchWidenedScope(core: core, now: now)
    }

    /// The subscription caught up: one from cursor 0 that an assistant began with its log
    /// verified through some index has fetched the history of the scope it had then.
    mutating func zeroSubscriptionCaughtUp(core: ClientCore) {
        guard let through = zeroSubscriptionAt else { return }
        zeroSubscriptionAt = nil
        do { try core.recordScopeHistory(through: through) } catch {
            core.logger.error("local store failure while syncing", metadata: ["error": "\(error)"])
        }
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
