import CloakCRDT
import CloakCrypto
import CloakProtocol
import Foundation
import GRDB

extension ClientCore {
    /// Runs a local edit on one conversation's document and makes it durable before returning:
    /// a normal edit is sealed into a change set at once; a streaming edit joins the
    /// conversation's pending batch (persisted encrypted) that ``flushDueBatches()`` seals after
    /// `configuration.streamBatchMillis` (DESIGN.md: "~100 ms of a streaming AI reply").
    ///
    /// The document is edited in place (a streamed token must not copy the whole conversation).
    /// If making the edit durable fails, the conversation is reloaded from the store, so memory
    /// never shows an edit the store does not have.
    func edit<T>(
        _ conversation: ConversationID, streaming: Bool = false,
        _ body: (inout ConversationDocument, inout Replica, UInt64) throws(ConversationEditError) -> ([CRDTOperation], T)
    ) throws(ClientError) -> (T, CoreOutput) {
        _ = try requireAccount()
        guard conversation != .library,
            documents.conversations[conversation] != nil || documents.library.state(of: conversation.libraryKey) != nil
        else { throw .unknownConversation(conversation) }
        let now = now()
        let before = replica
        let (ops, result): ([CRDTOperation], T)
        do {
            (ops, result) = try body(&documents.conversations[conversation, default: ConversationDocument()], &replica, now)
        } catch { throw .invalidEdit("\(error)") }
        do {
            return (result, try commitLocal(ops, to: conversation, streaming: streaming, now: now))
        } catch {
            replica = before
            try reloadDocument(conversation)
            throw error
        }
    }

    /// Like ``edit(_:streaming:_:)`` for the account library.
    func editLibrary(
        _ body: (inout AccountLibraryDocument, inout Replica, UInt64) throws(LibraryEditError) -> [CRDTOperation]
    ) throws(ClientError) -> CoreOutput {
        _ = try requireAccount()
        let now = now()
        let before = replica
        let ops: [CRDTOperation]
        do { ops = try body(&documents.library, &replica, now) } catch { throw .invalidEdit("\(error)") }
        do {
            return try commitLocal(ops, to: .library, streaming: false, now: now)
        } catch {
            replica = before
            try reloadDocument(.library)
            throw error
        }
    }

    /// Whether change sets can be sealed now: this device holds the current epoch's key.
    var canSeal: Bool {
        guard let state = account else { return false }
        return state.keyring.has(epoch: state.log.currentEpoch)
    }

    private func commitLocal(_ ops: [CRDTOperation], to conversation: ConversationID, streaming: Bool, now: UInt64)
        throws(ClientError) -> CoreOutput
    {
        var output = CoreOutput()
        output.changed.insert(conversation)
        guard !ops.isEmpty else { return output }
        // Without the current epoch's key (it is on its way after another device's removal),
        // the operations wait durably as pending and are sealed when it arrives.
        if streaming || !canSeal {
            try persistPending(ops, conversation: conversation, now: now)
            output.fetchKeyEnvelopes = !canSeal
            return output
        }
        let batch = pendingOps[conversation] ?? ([], [], now)
        try seal(batch.ops + ops, conversation: conversation, pendingRows: batch.rows)
        pendingOps[conversation] = nil
        output.pushOutbox = true
        return output
    }

    private func persistPending(_ ops: [CRDTOperation], conversation: ConversationID, now: UInt64) throws(ClientError) {
        let sealed = cipher.seal(OperationBatch.encode(ops), context: Self.pendingContext(conversation))
        let replicaBytes = replica.encoded()
        let row = try store.write { db in
            try db.execute(
                sql: "INSERT INTO pending_ops(conversation, sealed) VALUES (?, ?)",
                arguments: [Data(conversation.bytes), Data(sealed)])
            try db.setMeta("replica", replicaBytes)
            return db.lastInsertedRowID
        }
        var batch = pendingOps[conversation] ?? ([], [], now)
        batch.ops += ops
        batch.rows.append(row)
        pendingOps[conversation] = batch
    }

    /// Seals every streaming batch older than the batching window (every batch with `force`).
    /// A batch leaves memory only once its change sets are stored.
    func flushDueBatches(force: Bool = false) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        guard canSeal else {
            output.fetchKeyEnvelopes = !pendingOps.isEmpty
            return output
        }
        let now = now()
        for (conversation, batch) in pendingOps where force || now >= batch.since + configuration.streamBatchMillis {
            try seal(batch.ops, conversation: conversation, pendingRows: batch.rows)
            pendingOps[conversation] = nil
            output.pushOutbox = true
        }
        return output
    }

    /// The earliest time a pending batch becomes due, if any.
    var nextBatchDeadline: UInt64? {
        guard canSeal else { return nil }
        return pendingOps.values.map { $0.since + configuration.streamBatchMillis }.min()
    }

    /// Seals `ops` into the next change set(s) of this device's chain in `conversation`,
    /// splitting batches too large for one change set (a long offline stream).
    func seal(_ ops: [CRDTOperation], conversation: ConversationID, pendingRows: [Int64]) throws(ClientError) {
        do {
            try sealOne(ops, conversation: conversation, pendingRows: pendingRows)
        } catch .invalidEdit(let reason) where ops.count > 1 && reason == Self.tooLarge {
            let half = ops.count / 2
            try seal(Array(ops[..<half]), conversation: conversation, pendingRows: [])
            try seal(Array(ops[half...]), conversation: conversation, pendingRows: pendingRows)
        }
    }

    static let tooLarge = "the edit is too large for one change set"

    /// Seals `ops` into the next change set of this device's chain in `conversation` and
    /// stores it, the outbox entry, the chain position and the replica in one transaction.
    private func sealOne(_ ops: [CRDTOperation], conversation: ConversationID, pendingRows: [Int64])
        throws(ClientError)
    {
        let changeSet = try makeChangeSet(ops, conversation: conversation)
        try store.write { db in try persistSealed(changeSet, pendingRows: pendingRows, db: db) }
        noteSealed(changeSet)
    }

    /// The next change set of this device's chain in `conversation`, not yet stored.
    func makeChangeSet(_ ops: [CRDTOperation], conversation: ConversationID) throws(ClientError) -> ChangeSet {
        guard var account else { throw .noAccount }
        let log = account.log
        let epoch = log.currentEpoch
        guard let key = account.keyring.changeSetKey(conversation, epoch: epoch) else {
            throw .missingEpochKey(epoch)
        }
        self.account = account
        let previous = chains[ChainKey(conversation: conversation, author: me)]
        var body = Cloak_V1_ChangeSetBody()
        body.heads = chains.filter { $0.key.conversation == conversation && $0.key.author != me }
            .sorted { $0.key.author < $1.key.author }
            .map { ChainHead(device: $0.key.author, seq: $0.value.seq, hash: $0.value.hash).message }
        body.operations = Data(OperationBatch.encode(ops))
        body.hlcMs = replica.clock.latest.millis
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

    /// Stores a sealed change set as the newest of this device's chain, in the outbox.
    func persistSealed(_ changeSet: ChangeSet, pendingRows: [Int64], db: Database) throws {
        let header = changeSet.header
        let row = try db.insertChangeSet(changeSet, local: true)
        try db.cachedStatement(sql: "INSERT INTO outbox(change_set) VALUES (?)").execute(arguments: [row])
        try db.setChain(ChainKey(conversation: header.conversation, author: me),
                        ChainPosition(seq: header.seq, hash: changeSet.hash))
        for pending in pendingRows { try db.execute(sql: "DELETE FROM pending_ops WHERE id = ?", arguments: [pending]) }
        try db.setMeta("replica", replica.encoded())
    }

    /// Updates memory after ``persistSealed(_:pendingRows:db:)`` committed.
    func noteSealed(_ changeSet: ChangeSet) {
        let header = changeSet.header
        chains[ChainKey(conversation: header.conversation, author: me)] = ChainPosition(seq: header.seq, hash: changeSet.hash)
        unsavedChanges[header.conversation, default: 0] += 1
        changesSinceSnapshot[header.conversation, default: 0] += 1
    }

    /// The oldest unacknowledged change sets, in the order they were sealed.
    func outbox(limit: Int) throws(ClientError) -> [ChangeSet] {
        let wires = try store.read { db in
            try Data.fetchAll(
                db,
                sql: """
                    SELECT change_sets.wire FROM outbox JOIN change_sets ON change_sets.id = outbox.change_set
                    ORDER BY outbox.change_set LIMIT ?
                    """, arguments: [limit])
        }
        return wires.compactMap { try? ChangeSet(wire: Array($0)) }
    }

    /// Removes acknowledged change sets from the outbox.
    func acknowledge(_ hashes: [ChangeSetHash]) throws(ClientError) {
        guard !hashes.isEmpty else { return }
        try store.write { db in
            for hash in hashes {
                try db.execute(
                    sql: "DELETE FROM outbox WHERE change_set = (SELECT id FROM change_sets WHERE hash = ?)",
                    arguments: [Data(hash.bytes)])
            }
        }
    }
}
