import CloakCRDT
import CloakCrypto
import CloakProtocol
import Logging

extension ClientCore {
    /// Applies PROTOCOL.md §10 after the fact: when a removal arrives late, change sets of the
    /// removed device beyond its cut-off may already be applied here. Every device must end
    /// with the same state, so each affected conversation is rebuilt from its stored change
    /// sets without them (they are deleted, kept as rejected for diagnosis, and reported).
    ///
    /// An assistant's revocation or restriction (PROTOCOL.md §29) is enforced the same way, on
    /// the conversations it removes. What is kept is decided by the admission rule itself over
    /// the new log, so a conversation removed and later granted again keeps what was written
    /// under the new grant.
    func enforceRemovals(_ entries: [DeviceLogEntry], _ tx: any StoreTransaction, _ output: inout CoreOutput) throws {
        guard let log = membership.log else { return }
        for entry in entries where entry.kind.startsEpoch {
            guard let removed = entry.removedDevice else { continue }
            let restricted = entry.kind == .restrictAssistant ? Set(entry.scope) : nil
            let affected = ledger.chains.filter { key, position in
                guard key.author == removed, restricted.map({ $0.contains(key.conversation) }) ?? true else { return false }
                guard let cutoff = Self.cutoff(in: entry, key.conversation) else { return true }
                return Self.isPast(position, cutoff)
            }
            for key in affected.keys.sorted(by: { $0.conversation < $1.conversation }) {
                try rebuild(key.conversation, dropping: removed, cutoff: Self.cutoff(in: entry, key.conversation), log: log, tx, &output)
            }
        }
    }

    /// Where `entry` ends the removed member's chain in `conversation`, if it names it.
    private static func cutoff(in entry: DeviceLogEntry, _ conversation: ConversationID) -> ChainPosition? {
        entry.cutoffs.first { $0.conversation == conversation }.map { ChainPosition(seq: $0.seq, hash: $0.hash) }
    }

    /// Whether a chain reaches past a cut-off: further, or as far with another change set.
    private static func isPast(_ position: ChainPosition, _ cutoff: ChainPosition) -> Bool {
        position.seq > cutoff.seq || (position.seq == cutoff.seq && position.hash != cutoff.hash)
    }

    private func rebuild(
        _ conversation: ConversationID, dropping removed: DeviceID, cutoff: ChainPosition?, log: DeviceLog,
        _ tx: any StoreTransaction, _ output: inout CoreOutput
    ) throws {
        var dropped = 0
        var kept: ChainPosition?
        var firstDropped: ChangeSetHeader?
        // An assistant's own change sets the server never acknowledged, written before it
        // learned the conversation left its scope, are its honest race (§29), not an alarm.
        let unacknowledged = removed == me ? Set(try Outbox.unacknowledged(limit: Int.max >> 1, tx).map(\.hash)) : []
        var raced = 0
        for row in try tx.changeSets(in: conversation, after: 0) {
            guard let changeSet = try? ChangeSet(wire: row.wire), changeSet.header.author == removed else { continue }
            if case .accepted = log.admits(changeSetHeader: changeSet.header, hash: changeSet.hash) {
                if changeSet.header.seq > kept?.seq ?? 0 {
                    kept = ChainPosition(seq: changeSet.header.seq, hash: changeSet.hash)
                }
                continue
            }
            try tx.deleteChangeSet(id: row.id)
            try tx.recordRejected(
                changeSet.wire, hash: changeSet.hash, reason: "beyondRemovalCutoff", at: now(), kept: Self.rejectedKept)
            dropped += 1
            if unacknowledged.contains(changeSet.hash) { raced += 1 }
            if changeSet.header.seq < firstDropped?.seq ?? .max { firstDropped = changeSet.header }
        }
        let key = ChainKey(conversation: conversation, author: removed)
        // A device that joined from a snapshot holds none of the chain below what it stores:
        // the chain then ends just before the first dropped change set (named by its prev_hash).
        if kept == nil, let first = firstDropped, first.seq > 1 {
            kept = ChainPosition(seq: first.seq - 1, hash: first.prevHash)
        }
        let base = try tx.documentBase(conversation)
        // That snapshot may itself cover the removed device past the cut-off: taken before a
        // server lost change sets it covers, when the removal then named what the server still
        // held (seed 348). No rebuild on top of it can drop what it covers.
        let reach = kept ?? (firstDropped == nil ? ledger.chains[key] : nil)
        if base != nil, let reach, cutoff.map({ Self.isPast(reach, $0) }) ?? true {
            try startOver(conversation, dropping: removed, cutoff: cutoff, log: log, tx, &output)
            return
        }
        guard dropped > 0 else { return }
        // The saved state may contain the dropped operations: rebuild from the change sets, on
        // top of the snapshot this device joined from, if any (its covered change sets are not
        // stored here, so without it the rebuild would lose everything before them).
        if let base {
            try tx.putSavedDocument(base)
        } else {
            try tx.deleteSavedDocument(conversation)
        }
        documents.rebuildAfterCommit.insert(conversation)
        try ledger.setChain(key, kept, tx)
        documents.unsaved[conversation, default: 0] += 1
        output.changed.insert(conversation)
        guard dropped > raced else {
            // A removed device's own ones too (it learns of its removal as the others do).
            let why = log.assistants[removed] == nil ? "this device was removed" : "the conversation left this assistant's scope"
            logger.info("own unacknowledged change sets dropped: \(why)", metadata: ["count": "\(raced)"])
            return
        }
        let who = log.assistants[removed] == nil ? "device's removal" : "assistant's access ended"
        try raise(
            SecurityEvent(.beyondRemovalCutoff, conversation: conversation, device: removed,
                          detail: "removed \(dropped) change sets written after the \(who); rebuilt"),
            tx, &output)
    }

    /// PROTOCOL.md §10: the snapshot this device joined `conversation` from covers `removed`
    /// past the cut-off, so its state holds operations every other device drops. The device
    /// starts the conversation over as one that never had a snapshot: it forgets that state and
    /// the other writers' change sets, and fetches every chain again from its first change set
    /// (the removed device's only up to the cut-off). Its own chain stays: its change sets are
    /// all stored here (it wrote them after joining), and its next one must not reuse a seq.
    private func startOver(
        _ conversation: ConversationID, dropping removed: DeviceID, cutoff: ChainPosition?, log: DeviceLog,
        _ tx: any StoreTransaction, _ output: inout CoreOutput
    ) throws {
        for row in try tx.changeSets(in: conversation, after: 0) {
            guard let changeSet = try? ChangeSet(wire: row.wire), changeSet.header.author != me else { continue }
            try tx.deleteChangeSet(id: row.id)
        }
        try tx.deleteDocumentBase(conversation)
        try tx.deleteSavedDocument(conversation)
        let chains = ledger.chains.filter { $0.key.conversation == conversation && $0.key.author != me }
        for (key, position) in chains.sorted(by: { $0.key.author < $1.key.author }) {
            try ledger.setChain(key, nil, tx)
            let last = key.author == removed ? min(position.seq, cutoff?.seq ?? 0) : position.seq
            if last > 0 { output.gaps.append(GapRequest(conversation: conversation, author: key.author, fromSeq: 1, toSeq: last)) }
        }
        documents.rebuildAfterCommit.insert(conversation)
        documents.unsaved[conversation, default: 0] += 1
        output.changed.insert(conversation)
        let who = log.assistants[removed] == nil ? "device's removal" : "assistant's access ended"
        try raise(
            SecurityEvent(.beyondRemovalCutoff, conversation: conversation, device: removed,
                          detail: "the snapshot this device joined from includes changes written after the \(who); "
                              + "fetching the conversation again"),
            tx, &output)
    }

    /// PROTOCOL.md §29: the served device log forks from this assistant's at entry `index`, so
    /// its unacknowledged change sets naming that entry or a later one can never be stored, nor
    /// admitted by a member whose log is the server's: they leave the outbox (their positions
    /// stay used: a copy pushed before the server's loss may be held somewhere), and the app is
    /// told what was lost.
    func dropForkedAway(from index: UInt64) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        try store.write { tx in
            let lost = try Outbox.unacknowledged(limit: Int.max >> 1, tx).filter {
                $0.header.author == me && $0.header.deviceLogIndex >= index
            }
            guard !lost.isEmpty else { return }
            for changeSet in lost { try tx.removeFromOutbox(hash: changeSet.hash) }
            try raise(
                SecurityEvent(.deviceLogFork, seq: index,
                              detail: "dropped \(lost.count) unsent change sets: they name device-log entries the server's "
                                  + "log replaced from entry \(index), so no member can accept them"),
                tx, &output)
        }
        return output
    }

    /// Rebuilds the conversations a late removal touched, from their remaining change sets.
    func rebuildPending() throws(ClientError) {
        let targets = documents.rebuildAfterCommit
        documents.rebuildAfterCommit = []
        // The saved state is the snapshot this device joined from, or gone (`rebuild`).
        for conversation in targets.sorted() { try reloadDocument(conversation) }
    }

    /// Rebuilds one document from durable state: its saved state, the stored change sets after
    /// it, then this device's unsealed operations. Used after a failed local write (so memory
    /// matches the store) and after a late removal (`rebuild` reset the saved state).
    func reloadDocument(_ conversation: ConversationID) throws(ClientError) {
        let (saved, rows) = try store.read { tx in
            let saved = try tx.savedDocument(conversation)
            return (saved, try tx.changeSets(in: conversation, after: saved?.appliedThrough ?? 0))
        }
        var fresh = DocumentSet()
        if let saved {
            var bytes = try cipher.open(saved.sealed, context: Documents.documentContext(conversation))
            defer { SecretBytes.wipe(&bytes) }
            do { try fresh.load(snapshot: bytes, for: conversation) } catch { throw .storage("stored state is corrupt") }
        }
        let now = now()
        for row in rows {
            guard let changeSet = try? ChangeSet(wire: row.wire), let (_, ops) = try? decrypt(changeSet) else { continue }
            _ = fresh.apply(ops, to: conversation, physicalMillis: now, ownReplica: me.replicaID)
        }
        if let batch = outbox.pending[conversation] {
            _ = fresh.apply(batch.ops, to: conversation, physicalMillis: now, ownReplica: me.replicaID)
        }
        documents.replace(conversation, from: fresh)
    }
}
