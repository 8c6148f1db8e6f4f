import CloakCRDT
import CloakCrypto
import CloakProtocol

/// The materialised conversations: one CRDT document per conversation plus the account
/// library, their saved (sealed) states, and how far each is from its last save and its last
/// snapshot. It owns the `documents` and `snapshots` tables.
struct Documents {
    /// The CRDT documents.
    var all = DocumentSet()
    /// Accepted change sets per conversation since its state was last saved.
    var unsaved: [ConversationID: Int] = [:]
    /// Change sets per conversation since the last snapshot this device knows of.
    var sinceSnapshot: [ConversationID: Int] = [:]
    /// The snapshot sent to the server and not yet confirmed.
    var pendingSnapshot: Snapshot?
    /// Conversations to rebuild from their change sets once the current write commits.
    var rebuildAfterCommit: Set<ConversationID> = []
    /// Conversations this device started from a snapshot (bootstrap), for diagnostics.
    var bootstrappedFromSnapshots = 0

    static func documentContext(_ conversation: ConversationID) -> [UInt8] { Array("document".utf8) + conversation.bytes }

    var conversations: [ConversationID: ConversationDocument] { all.conversations }
    var library: AccountLibraryDocument { all.library }

    /// Whether this device has any conversation state.
    var isEmpty: Bool { all.conversations.isEmpty }

    /// Whether `conversation` exists here (its document, or a library entry).
    func knows(_ conversation: ConversationID) -> Bool {
        all.conversations[conversation] != nil || all.library.state(of: conversation.libraryKey) != nil
    }

    /// Applies decoded operations to one document and counts the change towards its next save
    /// and snapshot.
    mutating func apply(
        _ ops: [CRDTOperation], to conversation: ConversationID, now: UInt64, counted: Bool = true,
        ownReplica: ReplicaID? = nil
    ) -> ApplyReport {
        let report = all.apply(ops, to: conversation, physicalMillis: now, ownReplica: ownReplica)
        if counted {
            unsaved[conversation, default: 0] += 1
            sinceSnapshot[conversation, default: 0] += 1
        }
        return report
    }

    /// Loads the saved states; returns, per conversation, the newest change-set row each includes.
    mutating func loadSaved(_ saved: [SavedDocument], cipher: LocalCipher) throws(ClientError) -> [ConversationID: Int64] {
        var appliedThrough: [ConversationID: Int64] = [:]
        for document in saved {
            var bytes = try cipher.open(document.sealed, context: Self.documentContext(document.conversation))
            defer { SecretBytes.wipe(&bytes) }
            do { try all.load(snapshot: bytes, for: document.conversation) } catch {
                throw .storage("stored conversation state is corrupt")
            }
            appliedThrough[document.conversation] = document.appliedThrough
        }
        return appliedThrough
    }

    /// Saves the state of every conversation with unsaved changes (or only `conversation`).
    mutating func save(only conversation: ConversationID? = nil, cipher: LocalCipher, _ tx: any StoreTransaction) throws {
        let targets = conversation.map { [$0] } ?? Array(unsaved.keys)
        guard !targets.isEmpty else { return }
        let through = try tx.newestChangeSetID()
        for target in targets {
            guard var snapshot = all.snapshot(of: target) else { continue }
            defer { SecretBytes.wipe(&snapshot) }
            let sealed = cipher.seal(snapshot, context: Self.documentContext(target))
            try tx.putSavedDocument(SavedDocument(conversation: target, sealed: sealed, appliedThrough: through))
            unsaved[target] = nil
        }
    }

    /// Saves states that have accumulated many unsaved change sets, so start-up replay stays
    /// short: after `every`, or an eighth of the conversation's messages if that is more.
    /// Saving costs time proportional to the whole document, so a fixed interval would make
    /// receiving into a long conversation ever slower; this keeps it constant per change set,
    /// and replay after a restart under an eighth of the history.
    mutating func saveIfDue(every: Int, cipher: LocalCipher, _ tx: any StoreTransaction) throws {
        for (conversation, count) in unsaved
        where count >= max(every, (all.conversations[conversation]?.messageCount ?? 0) / 8) {
            try save(only: conversation, cipher: cipher, tx)
        }
    }

    /// Replaces one document with a freshly built one (after a failed write or a late removal).
    mutating func replace(_ conversation: ConversationID, from fresh: DocumentSet) {
        if conversation == .library {
            all.library = fresh.library
        } else {
            all.conversations[conversation] = fresh.conversations[conversation] ?? ConversationDocument()
        }
    }

    /// Makes sure an (empty) document exists for a conversation this device just created.
    mutating func ensure(_ conversation: ConversationID) {
        if all.conversations[conversation] == nil { all.conversations[conversation] = ConversationDocument() }
    }

    // MARK: Snapshot lineage (§13)

    /// Records a snapshot as the newest of its conversation's lineage.
    static func recordLineage(_ snapshot: Snapshot, _ tx: any StoreTransaction) throws {
        try tx.recordSnapshotLineage(
            snapshot.header.conversation,
            SnapshotLineage(hash: snapshot.hash, snapshotSeq: snapshot.header.snapshotSeq,
                            coveredTotal: coveredTotal(snapshot.header)),
            author: snapshot.header.author)
    }

    /// Serving a snapshot that covers less than the newest one already recorded is a rollback.
    static func rollbackProblem(_ header: Snapshot.Header, _ tx: any StoreTransaction) throws -> String? {
        guard let recorded = try tx.snapshotLineage(header.conversation) else { return nil }
        return coveredTotal(header) < recorded.coveredTotal
            ? "an older snapshot than the newest one this device recorded (rollback)" : nil
    }

    static func coveredTotal(_ header: Snapshot.Header) -> UInt64 {
        header.covers.reduce(0) { $0 &+ $1.seq }
    }
}
