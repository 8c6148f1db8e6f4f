import CloakCRDT
import CloakProtocol
import Logging

extension ClientCore {
    /// Re-seals the change sets the server refused with STALE_DEVICE_LOG (PROTOCOL.md §19),
    /// and every later one of their chains: same operations, same sequence numbers (the refused
    /// ones were never stored), newest head and epoch. Returns whether anything was re-sealed.
    /// Does nothing until this device holds the newest epoch's key.
    @discardableResult
    func resealStaleOutbox() throws(ClientError) -> Bool {
        guard !outbox.staleRefused.isEmpty, membership.canSeal, let lastRemoval = membership.log?.newestEpochStartIndex
        else { return false }
        let pending = try outboxChangeSets(limit: Int.max >> 1)
        let refused = outbox.staleRefused
        let isStale = { (changeSet: ChangeSet) in
            refused.contains(changeSet.hash) && changeSet.header.deviceLogIndex < lastRemoval
        }
        // Refused hashes no longer in the outbox (or written under a now-current head) are done with.
        outbox.staleRefused = Set(pending.filter(isStale).map(\.hash))
        guard !outbox.staleRefused.isEmpty else { return false }
        // Within a conversation everything after the first stale change set is re-sealed too,
        // so the chain stays continuous.
        var byConversation: [ConversationID: [ChangeSet]] = [:]
        for changeSet in pending { byConversation[changeSet.header.conversation, default: []].append(changeSet) }
        var resealed = false
        for (conversation, changeSets) in byConversation.sorted(by: { $0.key < $1.key }) {
            let ordered = changeSets.sorted { $0.header.seq < $1.header.seq }
            guard let first = ordered.firstIndex(where: isStale) else { continue }
            let redo = Array(ordered[first...])
            // Pushed again and not answered yet: the server may store it this time (a restored
            // one whose log lost the removal). Never two seals at one position (§19): wait for
            // the answer, which either stores it or refuses it again.
            guard !redo.contains(where: { outbox.unanswered.contains($0.hash) }) else { continue }
            try reseal(redo, in: conversation)
            resealed = true
        }
        return resealed
    }

    /// Replaces `redo` (consecutive own change sets of one chain, oldest first) by new seals of
    /// the same operations, in one transaction: the old change sets go and the new ones arrive
    /// together, so a crash cannot lose the operations in between (the server never stored them).
    private func reseal(_ redo: [ChangeSet], in conversation: ConversationID) throws(ClientError) {
        var operations: [[CRDTOperation]] = []
        for changeSet in redo {
            guard let (_, ops) = try? decrypt(changeSet) else { throw .storage("cannot re-open our own change set") }
            operations.append(ops)
        }
        let key = ChainKey(conversation: conversation, author: me)
        let saved = ledger.chains[key]
        ledger.chains[key] = redo[0].header.seq == 1 ? nil : ChainPosition(seq: redo[0].header.seq - 1, hash: redo[0].header.prevHash)
        var sealed: [ChangeSet] = []
        do {
            try store.write { tx in
                for changeSet in redo {
                    if let id = try tx.changeSetID(hash: changeSet.hash) { try tx.deleteChangeSet(id: id) }
                }
                for ops in operations {
                    let changeSet = try makeChangeSet(ops, conversation: conversation)
                    try outbox.persistSealed(changeSet, pendingRows: [], tx)
                    try Ledger.storeChain(key, ChainPosition(seq: changeSet.header.seq, hash: changeSet.hash), tx)
                    // The next seal of this chain follows this one.
                    ledger.chains[key] = ChainPosition(seq: changeSet.header.seq, hash: changeSet.hash)
                    sealed.append(changeSet)
                }
            }
        } catch {
            ledger.chains[key] = saved
            throw error
        }
        documents.unsaved[conversation, default: 0] += sealed.count
        documents.sinceSnapshot[conversation, default: 0] += sealed.count
        for changeSet in redo { outbox.staleRefused.remove(changeSet.hash) }
        logger.info("re-sealed change sets under the newest device-log head", metadata: ["count": "\(redo.count)"])
    }

    /// Queued envelopes to send now, less those to a recipient that is no longer a member
    /// (removed, a replaced recovery key, an assistant whose grant ended since they were
    /// sealed): the server refuses a batch holding one, which would keep the rest — a newer
    /// epoch's keys among them — from everyone for good. Those are dropped from the queue.
    func envelopesToSend(limit: Int = 256) throws(ClientError) -> [(id: Int64, envelope: Cloak_V1_KeyEnvelope)] {
        let queued = try queuedEnvelopes(limit: limit)
        guard let log = membership.log else { return queued }
        var obsolete: [Int64] = []
        let current = queued.filter { item in
            let recipient = try? DeviceID(validating: item.envelope.recipient, field: "recipient")
            let member = recipient.map { id in
                log.isActive(id, atIndex: log.headIndex) || log.recoveryKey?.id == id
                    || (log.assistants[id].map { Self.stillInScope(item.envelope, of: $0) } ?? false)
            } ?? false
            if !member { obsolete.append(item.id) }
            return member
        }
        if !obsolete.isEmpty {
            try envelopesDelivered(obsolete)
            logger.info(
                "dropped queued key envelopes to former members or outside an assistant's scope",
                metadata: ["count": "\(obsolete.count)"])
        }
        return current
    }

    /// Whether an envelope queued for an assistant is still one the server takes: the assistant
    /// is granted and the conversation still in its scope. A restriction that took the
    /// conversation while the envelope waited makes the server refuse it `OUT_OF_SCOPE`, and with
    /// it the whole batch, for ever (CI seed 10183: the other envelopes never went either).
    static func stillInScope(_ envelope: Cloak_V1_KeyEnvelope, of assistant: AssistantMember) -> Bool {
        guard assistant.endedAt == nil else { return false }
        guard !envelope.conversationID.isEmpty else { return true }
        guard let conversation = try? ConversationID(validating: envelope.conversationID, field: "conversation_id") else {
            return false
        }
        return assistant.current.covers(conversation)
    }
}
