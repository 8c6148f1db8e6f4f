import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation

extension ClientCore {
    /// Runs a local edit on one conversation's document and makes it durable before returning:
    /// a normal edit is sealed into a change set at once; a streaming edit joins the
    /// conversation's pending batch (persisted encrypted) that ``flushDueBatches(force:)`` seals
    /// after `configuration.streamBatchMillis` (docs/design.md "Change sets": "~100 ms of a
    /// streamed reply").
    ///
    /// The document is edited in place (a streamed token must not copy the whole conversation).
    /// If making the edit durable fails, the conversation is reloaded from the store, so memory
    /// never shows an edit the store does not have.
    func edit<T>(
        _ conversation: ConversationID, streaming: Bool = false,
        _ body: (inout ConversationDocument, inout Replica, UInt64) throws(ConversationEditError) -> ([CRDTOperation], T)
    ) throws(ClientError) -> (T, CoreOutput) {
        _ = try requireAccount()
        guard conversation != .library, documents.knows(conversation) else { throw .unknownConversation(conversation) }
        let now = now()
        let before = outbox.replica
        let (ops, result): ([CRDTOperation], T)
        do {
            (ops, result) = try body(
                &documents.all.conversations[conversation, default: ConversationDocument()], &outbox.replica, now)
        } catch { throw .invalidEdit("\(error)") }
        do {
            try checkAssistantRights(ops, in: conversation)
            return (result, try commitLocal(ops, to: conversation, streaming: streaming, now: now))
        } catch {
            outbox.replica = before
            try reloadDocument(conversation)
            throw error
        }
    }

    /// Like ``edit(_:streaming:_:)`` for the account library.
    func editLibrary(
        _ body: (inout AccountLibraryDocument, inout Replica, UInt64) throws(LibraryEditError) -> [CRDTOperation]
    ) throws(ClientError) -> CoreOutput {
        _ = try requireAccount()
        guard !isAssistant else { throw .notPermitted("an assistant cannot change the conversation list") }
        let now = now()
        let before = outbox.replica
        let ops: [CRDTOperation]
        do { ops = try body(&documents.all.library, &outbox.replica, now) } catch { throw .invalidEdit("\(error)") }
        do {
            return try commitLocal(ops, to: .library, streaming: false, now: now)
        } catch {
            outbox.replica = before
            try reloadDocument(.library)
            throw error
        }
    }

    private func commitLocal(_ ops: [CRDTOperation], to conversation: ConversationID, streaming: Bool, now: UInt64)
        throws(ClientError) -> CoreOutput
    {
        var output = CoreOutput()
        output.changed.insert(conversation)
        guard !ops.isEmpty else { return output }
        // Without the current epoch's key (it is on its way after another device's removal),
        // the operations wait durably as pending and are sealed when it arrives.
        let canSeal = membership.canSeal(conversation)
        if streaming || !canSeal {
            let cipher = cipher
            let row = try store.write { tx in
                try outbox.persistPending(ops, conversation: conversation, now: now, cipher: cipher, tx)
            }
            outbox.appendPending(ops, row: row, conversation: conversation, now: now)
            output.fetchKeyEnvelopes = !canSeal
            return output
        }
        let batch = outbox.pending[conversation] ?? Outbox.Batch(since: now)
        try seal(batch.ops + ops, conversation: conversation, pendingRows: batch.rows)
        outbox.pending[conversation] = nil
        output.pushOutbox = true
        return output
    }

    /// Seals every streaming batch older than the batching window (every batch with `force`).
    /// A batch leaves memory only once its change sets are stored.
    func flushDueBatches(force: Bool = false) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        guard membership.canSeal else {
            output.fetchKeyEnvelopes = !outbox.pending.isEmpty && !membership.removed
            return output
        }
        let now = now()
        for (conversation, batch) in outbox.pending.sorted(by: { $0.key < $1.key })
        where (force || now >= batch.since + configuration.streamBatchMillis) && membership.canSeal(conversation) {
            try seal(batch.ops, conversation: conversation, pendingRows: batch.rows)
            outbox.pending[conversation] = nil
            output.pushOutbox = true
        }
        return output
    }

    /// Pending batches that may still be sealed. An assistant's batch in a conversation its
    /// scope lost (a reply it was streaming when the restriction reached it) is kept — a later
    /// grant of the conversation seals it — but is nothing waiting to be sent: every device
    /// would refuse it now (§29), and counting it kept the assistant from ever being synced.
    var waitingBatches: [ConversationID: Outbox.Batch] {
        outbox.pending.filter { inCurrentScope($0.key) }
    }

    /// The earliest time a pending batch becomes due, if any.
    /// A batch in a conversation this device cannot seal now (an assistant whose scope lost it
    /// mid-reply, a key not here yet) is not due: waking the driver for it would spin.
    var nextBatchDeadline: UInt64? {
        guard membership.canSeal else { return nil }
        return outbox.pending.filter { membership.canSeal($0.key) }.map { $0.value.since + configuration.streamBatchMillis }.min()
    }

    /// Seals `ops` into the next change set(s) of this device's chain in `conversation`,
    /// splitting batches too large for one change set (a long offline stream).
    func seal(_ ops: [CRDTOperation], conversation: ConversationID, pendingRows: [Int64]) throws(ClientError) {
        do {
            let changeSet = try makeChangeSet(ops, conversation: conversation)
            let outbox = outbox
            let me = me
            try store.write { tx in
                try outbox.persistSealed(changeSet, pendingRows: pendingRows, tx)
                try Ledger.storeChain(
                    ChainKey(conversation: conversation, author: me),
                    ChainPosition(seq: changeSet.header.seq, hash: changeSet.hash), tx)
            }
            noteSealed(changeSet)
        } catch .invalidEdit(let reason) where ops.count > 1 && reason == Self.tooLarge {
            let half = ops.count / 2
            try seal(Array(ops[..<half]), conversation: conversation, pendingRows: [])
            try seal(Array(ops[half...]), conversation: conversation, pendingRows: pendingRows)
        }
    }

    static let tooLarge = "the edit is too large for one change set"

    /// The next change set of this device's chain in `conversation`, not yet stored.
    func makeChangeSet(_ ops: [CRDTOperation], conversation: ConversationID) throws(ClientError) -> ChangeSet {
        let log = try requireAccount()
        let epoch = log.currentEpoch
        guard let key = membership.changeSetKey(conversation, epoch: epoch) else { throw .missingEpochKey(epoch) }
        let previous = ledger.chains[ChainKey(conversation: conversation, author: me)]
        var body = Cloak_V1_ChangeSetBody()
        body.heads = ledger.chains.filter { $0.key.conversation == conversation && $0.key.author != me }
            .sorted { $0.key.author < $1.key.author }
            .map { ChainHead(device: $0.key.author, seq: $0.value.seq, hash: $0.value.hash).message }
        body.operations = Data(OperationBatch.encode(ops))
        body.hlcMs = outbox.replica.clock.latest.millis
        var plaintext = FrameCodec.serialize(body)
        defer { SecretBytes.wipe(&plaintext) }
        let header = ChangeSetHeader(
            account: log.account, conversation: conversation, author: me, seq: (previous?.seq ?? 0) + 1,
            prevHash: previous?.hash ?? .zero, epoch: epoch, deviceLogIndex: log.headIndex, deviceLogHead: log.head)
        do {
            return try ChangeSetSealer.seal(
                body: plaintext, header: header, changeSetKey: key, signer: identity.signing, random: random,
                maxBytes: configuration.limits.maxChangeSetBytes)
        } catch { throw .invalidEdit(Self.tooLarge) }
    }

    /// Updates memory after a sealed change set committed.
    func noteSealed(_ changeSet: ChangeSet) {
        let header = changeSet.header
        ledger.chains[ChainKey(conversation: header.conversation, author: me)] = ChainPosition(seq: header.seq, hash: changeSet.hash)
        documents.unsaved[header.conversation, default: 0] += 1
        documents.sinceSnapshot[header.conversation, default: 0] += 1
    }

    /// The oldest unacknowledged change sets, in the order they were sealed.
    func outboxChangeSets(limit: Int) throws(ClientError) -> [ChangeSet] {
        try store.read { tx in try Outbox.unacknowledged(limit: limit, tx) }
    }

    /// Removes acknowledged change sets from the outbox, and clears the unanswered mark of
    /// those the server answered and did not store (`answered`), in one transaction.
    func acknowledge(_ hashes: [ChangeSetHash], answered: Set<ChangeSetHash> = []) throws(ClientError) {
        let cleared = outbox.unanswered.intersection(answered)
        guard !hashes.isEmpty || !cleared.isEmpty else { return }
        try store.write { tx in
            for hash in hashes { try tx.removeFromOutbox(hash: hash) }
            for hash in cleared { try tx.setUnanswered(hash: hash, false) }
        }
        outbox.unanswered.subtract(cleared)
        outbox.unanswered.subtract(hashes)
    }

    /// Marks outbox change sets as sent before a push carrying them leaves (§19): until its
    /// answer is processed the server may hold them, and a restart in between must not let
    /// this device re-seal one. Writes only for change sets not marked yet.
    func markPushed(_ hashes: [ChangeSetHash]) throws(ClientError) {
        let new = hashes.filter { !outbox.unanswered.contains($0) }
        guard !new.isEmpty else { return }
        try store.write { tx in
            for hash in new { try tx.setUnanswered(hash: hash, true) }
        }
        outbox.unanswered.formUnion(new)
    }

    /// Whether nothing local waits: no unsealed operations and an empty outbox.
    func nothingToSend() throws(ClientError) -> Bool {
        guard waitingBatches.isEmpty else { return false }
        return try store.read { tx in try tx.outbox(limit: 1).isEmpty && tx.queuedEnvelopes(limit: 1).isEmpty }
    }
}
