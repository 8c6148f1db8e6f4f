import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation

extension ClientCore {
    /// True once this device has any conversation state or change set (a new device has none
    /// and bootstraps from snapshots first).
    var hasLocalHistory: Bool {
        !documents.isEmpty || !ledger.isEmpty
    }

    /// A snapshot of the first conversation (in id order) that has accumulated `snapshotEvery`
    /// change sets since the last snapshot this device knows of (docs/design.md "Change sets").
    func snapshotIfDue() throws(ClientError) -> Snapshot? {
        // A snapshot states exactly what it covers, and covers only what the server holds: not
        // while this device has unsealed edits there (in the document, in no change set its
        // covers could name: a device loading it would refuse their change set later as a
        // reused id), nor change sets the server has not acknowledged (a STALE_DEVICE_LOG
        // refusal re-seals them with other hashes, and the covers would name a fork).
        // Snapshots are a device's work: an assistant may only write its own messages (§29).
        guard !isAssistant else { return nil }
        let due = documents.sinceSnapshot.filter { $0.value >= configuration.snapshotEvery && outbox.pending[$0.key] == nil }
        guard !due.isEmpty else { return nil }
        let unacknowledged = Set(try outboxChangeSets(limit: Int.max >> 1).map(\.header.conversation))
        guard let conversation = due.keys.filter({ !unacknowledged.contains($0) }).min(),
            conversation != .library || documents.library.conversations.count > 0,
            let log = membership.log, !membership.removed, let document = documents.all.snapshot(of: conversation),
            let key = membership.conversationKey(conversation, epoch: log.currentEpoch)
        else { return nil }
        let previous = try store.read { tx in try tx.snapshotLineage(conversation) }
        let covers = ledger.chains.filter { $0.key.conversation == conversation }
            .map { ChainHead(device: $0.key.author, seq: $0.value.seq, hash: $0.value.hash) }
        let header = Snapshot.Header(
            account: log.account, conversation: conversation, author: me,
            snapshotSeq: (previous?.snapshotSeq ?? 0) + 1, prevSnapshotHash: previous?.hash ?? .zero,
            epoch: log.currentEpoch, deviceLogIndex: log.headIndex, deviceLogHead: log.head, covers: covers)
        var body = Cloak_V1_SnapshotBody()
        body.state = Data(document)
        var plaintext = FrameCodec.serialize(body)
        defer { SecretBytes.wipe(&plaintext) }
        let snapshot: Snapshot
        do {
            snapshot = try SnapshotSealer.seal(
                body: plaintext, header: header, conversationKey: key, signer: identity.signing, random: random)
        } catch { throw .crypto(error) }
        documents.sinceSnapshot[conversation] = 0
        documents.pendingSnapshot = snapshot
        return snapshot
    }

    /// The server stored our snapshot: it is now the newest of its conversation's lineage.
    func snapshotStored() throws(ClientError) {
        guard let snapshot = documents.pendingSnapshot else { return }
        documents.pendingSnapshot = nil
        try store.write { tx in try Documents.recordLineage(snapshot, tx) }
    }

    /// Verifies served snapshots (PROTOCOL.md §13). A verified snapshot whose covered heads
    /// agree with every change set this device holds becomes the newest of its conversation's
    /// lineage; a conversation this device has no state for starts from it (bootstrap). A
    /// snapshot that disagrees with what we hold is a fork; one older than the newest snapshot
    /// we recorded, served as the newest, is a rollback (ADV-12). Both are refused and reported.
    func loadSnapshots(_ snapshots: [Snapshot]) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        guard let log = membership.log, !membership.removed else { return output }
        let cipher = cipher
        try store.write { tx in
            for snapshot in snapshots { try loadSnapshot(snapshot, log: log, tx, &output) }
            try documents.save(cipher: cipher, tx)
        }
        return output
    }

    /// One served snapshot (``loadSnapshots(_:)``); the caller saves the documents.
    func loadSnapshot(_ snapshot: Snapshot, log: DeviceLog, _ tx: any StoreTransaction, _ output: inout CoreOutput) throws {
        let header = snapshot.header
        if let problem = try Self.snapshotProblem(snapshot, log) ?? coversProblem(header, tx)
            ?? Documents.rollbackProblem(header, tx)
        {
            try raise(SecurityEvent(.snapshotRejected, conversation: header.conversation, device: header.author,
                                    detail: problem), tx, &output)
            return
        }
        let known = ledger.chains.keys.contains { $0.conversation == header.conversation }
        guard !known, let key = membership.conversationKey(header.conversation, epoch: header.epoch) else {
            // An assistant's widened scope may be served before the conversation's key: the
            // snapshot waits for it (§29), or the history it covers would be lost for good.
            if !known, isAssistant, inCurrentScope(header.conversation) {
                try awaitKey(for: snapshot, tx)
            } else {
                try Documents.recordLineage(snapshot, tx)
            }
            return
        }
        guard var plaintext = try? SnapshotSealer.open(snapshot, conversationKey: key),
            let body = try? FrameCodec.parse(Cloak_V1_SnapshotBody.self, from: plaintext, what: "snapshot"),
            (try? documents.all.load(snapshot: Array(body.state), for: header.conversation)) != nil
        else {
            try raise(SecurityEvent(.snapshotRejected, conversation: header.conversation,
                                    detail: "snapshot does not decrypt or decode"), tx, &output)
            return
        }
        SecretBytes.wipe(&plaintext)
        // The change sets the snapshot covers will never be stored here: keep the state
        // it starts from, so a late cut-off's rebuild (§10) does not lose it.
        try tx.putDocumentBase(SavedDocument(
            conversation: header.conversation,
            sealed: cipher.seal(Array(body.state), context: Documents.documentContext(header.conversation)),
            appliedThrough: try tx.newestChangeSetID()))
        // Edits this device made there and has not sealed yet (it may write into a
        // conversation it knows only from the library) stay: the snapshot holds none.
        if let pending = outbox.pending[header.conversation] {
            _ = documents.apply(pending.ops, to: header.conversation, now: now(), counted: false, ownReplica: me.replicaID)
        }
        for head in header.covers {
            try ledger.setChain(
                ChainKey(conversation: header.conversation, author: head.device),
                ChainPosition(seq: head.seq, hash: head.hash), tx)
        }
        try Documents.recordLineage(snapshot, tx)
        documents.unsaved[header.conversation, default: 0] += 1
        documents.bootstrappedFromSnapshots += 1
        output.changed.insert(header.conversation)
    }

    static func snapshotProblem(_ snapshot: Snapshot, _ log: DeviceLog) -> String? {
        let header = snapshot.header
        guard header.account == log.account else { return "snapshot for another account" }
        guard let member = log.members[header.author], !member.isRecoveryKey else { return "unknown author" }
        do { try snapshot.verifySignature(member.signingKey) } catch { return "bad signature" }
        guard log.hash(atIndex: header.deviceLogIndex) == header.deviceLogHead,
            log.isActive(header.author, atIndex: header.deviceLogIndex),
            log.epoch(atIndex: header.deviceLogIndex) == header.epoch
        else { return "author not active at the head it names, or wrong epoch" }
        // A removed device's snapshots are never trusted (§10 rule 6 for snapshots): a state
        // cannot be checked against its cut-offs.
        guard log.removal(of: header.author) == nil else { return "author was removed from the account" }
        for head in header.covers where log.members[head.device] == nil && log.assistants[head.device] == nil {
            return "covers a device that was never a member"
        }
        return nil
    }

    /// A covered head that disagrees with a change set this device holds means the author saw
    /// (or the server shows) another history: a fork.
    func coversProblem(_ header: Snapshot.Header, _ tx: any StoreTransaction) throws -> String? {
        for head in header.covers {
            let chain = ledger.chains[ChainKey(conversation: header.conversation, author: head.device)]
            let ours = chain?.seq == head.seq
                ? chain?.hash : try tx.storedHash(conversation: header.conversation, author: head.device, seq: head.seq)
            if let ours, ours != head.hash { return "covers a change set that differs from ours (fork)" }
        }
        return nil
    }

    /// Whether this device knows a snapshot of `conversation` (its own upload or a served one).
    func knowsSnapshot(of conversation: ConversationID) -> Bool {
        ((try? store.read { tx in try tx.snapshotLineage(conversation) }) ?? nil) != nil
    }
}
