import CloakProtocol
import Logging

// Pushes that went unanswered (PROTOCOL.md §19): the server may have stored and fanned out
// what they carried, then lost it (a restored backup) and now refuses it as stale. Such a
// change set is never re-sealed — other devices may hold it — but goes back unchanged.
extension SyncMachine {
    /// Marks an ordinary push's change sets in the store before it is sent, so a crash cannot
    /// forget that they may have left. One already marked was sent before by a push whose
    /// answer never came — on a dropped connection or before a restart — and counts as
    /// unanswered now. False (nothing may be sent, retried later) when the store fails.
    mutating func markPushed(_ hashes: [ChangeSetHash], core: ClientCore, now: UInt64) -> Bool {
        unanswered.formUnion(hashes.filter { core.outbox.unanswered.contains($0) })
        do { try core.markPushed(hashes) } catch {
            pushRetryAt = now + configuration.reconnectMinMillis * 5
            return false
        }
        return true
    }

    /// Own change sets refused as stale after a push of them went unanswered, queued as restore
    /// pushes with the whole chain before them: the restored server may have lost that too,
    /// and a restore above its head is refused with GAP (it answers what it holds as duplicates).
    mutating func restoreUnanswered(_ refused: Set<ChangeSetHash>, core: ClientCore) {
        guard let outbox = try? core.outboxChangeSets(limit: Int.max >> 1) else { return }
        let chains = Set(outbox.filter { refused.contains($0.hash) }.map {
            ChainKey(conversation: $0.header.conversation, author: $0.header.author)
        })
        let unacknowledged = Set(outbox.map(\.hash)).subtracting(refused)
        core.logger.info(
            "restoring change sets refused as stale whose earlier push went unanswered",
            metadata: ["count": "\(refused.count)", "device": "\(core.me)"])
        for chain in chains.sorted(by: { $0.conversation < $1.conversation }) {
            healing.restoreQueue += (try? core.restoreCandidates(chain, after: 0, unacknowledged: unacknowledged)) ?? []
        }
    }
}
