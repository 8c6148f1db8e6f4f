import CloakCRDT
import CloakCrypto
import CloakProtocol
import Foundation
import GRDB

extension ClientCore {
    /// Rebuilds the documents: saved states first, then every stored change set newer than
    /// its conversation's saved state, then unsealed local operations.
    func loadDocuments(_ loaded: StoredState) throws(ClientError) {
        var appliedThrough: [ConversationID: Int64] = [:]
        for (conversation, sealed, through) in loaded.documents {
            var bytes = try cipher.open(sealed, context: Self.documentContext(conversation))
            defer { SecretBytes.wipe(&bytes) }
            do { try documents.load(snapshot: bytes, for: conversation) } catch {
                throw .storage("stored conversation state is corrupt")
            }
            appliedThrough[conversation] = through
        }
        let rows = try store.read { db in
            // Replay from the oldest point any conversation needs: its saved state's
            // `applied_through`, or 0 for a conversation whose state was never saved.
            let minimum = try Int64.fetchOne(
                db,
                sql: """
                    SELECT COALESCE(MIN(COALESCE(documents.applied_through, 0)), 0)
                    FROM (SELECT DISTINCT conversation FROM change_sets) AS known
                    LEFT JOIN documents ON documents.conversation = known.conversation
                    """) ?? 0
            return try Row.fetchAll(
                db, sql: "SELECT id, conversation, wire FROM change_sets WHERE id > ? ORDER BY id", arguments: [minimum])
        }
        let now = now()
        for row in rows {
            guard let conversation = try? ConversationID(stored: row["conversation"]),
                (row["id"] as Int64) > appliedThrough[conversation, default: 0],
                let changeSet = try? ChangeSet(wire: Array(row["wire"] as Data)),
                let (_, ops) = try? decrypt(changeSet)
            else { continue }
            let report = documents.apply(ops, to: conversation, physicalMillis: now)
            replica.observe(report.newestTimestamp, physicalMillis: now)
            unsavedChanges[conversation, default: 0] += 1
        }
        for (row, conversation, sealed) in loaded.pending {
            let bytes = try cipher.open(sealed, context: Self.pendingContext(conversation))
            guard let ops = try? OperationBatch.decode(bytes) else { continue }
            _ = documents.apply(ops, to: conversation, physicalMillis: now)
            var batch = pendingOps[conversation] ?? ([], [], now)
            batch.ops += ops
            batch.rows.append(row)
            pendingOps[conversation] = batch
        }
    }

    /// Verifies the commitment, decrypts and decodes a change set this device already accepted
    /// (or is accepting): returns its body and operations.
    func decrypt(_ changeSet: ChangeSet) throws(ClientError) -> (Cloak_V1_ChangeSetBody, [CRDTOperation]) {
        guard var account else { throw .noAccount }
        let header = changeSet.header
        guard let key = account.keyring.changeSetKey(header.conversation, epoch: header.epoch) else {
            throw .missingEpochKey(header.epoch)
        }
        self.account = account
        var plaintext: [UInt8]
        do { plaintext = try ChangeSetSealer.open(changeSet, changeSetKey: key) } catch { throw .crypto(error) }
        defer { SecretBytes.wipe(&plaintext) }
        let body: Cloak_V1_ChangeSetBody
        do { body = try FrameCodec.parse(Cloak_V1_ChangeSetBody.self, from: plaintext, what: "change set body") } catch {
            throw .server(error)
        }
        do { return (body, try OperationBatch.decode(Array(body.operations))) } catch {
            throw .invalidEdit("operations do not decode")
        }
    }

    /// Saves the state of every conversation with unsaved changes (or only `conversation`).
    func saveDocuments(only conversation: ConversationID? = nil, db: Database) throws {
        let targets = conversation.map { [$0] } ?? Array(unsavedChanges.keys)
        guard !targets.isEmpty else { return }
        let through = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(id), 0) FROM change_sets") ?? 0
        for target in targets {
            guard var snapshot = documents.snapshot(of: target) else { continue }
            defer { SecretBytes.wipe(&snapshot) }
            let sealed = cipher.seal(snapshot, context: Self.documentContext(target))
            try db.execute(
                sql: """
                    INSERT INTO documents(conversation, sealed, applied_through) VALUES (?, ?, ?)
                    ON CONFLICT(conversation) DO UPDATE SET sealed = excluded.sealed,
                    applied_through = excluded.applied_through
                    """,
                arguments: [Data(target.bytes), Data(sealed), through])
            unsavedChanges[target] = nil
        }
    }

    /// Saves states that have accumulated many unsaved change sets, so start-up replay stays short.
    func saveDocumentsIfDue(db: Database) throws {
        for (conversation, count) in unsavedChanges where count >= saveThreshold(conversation) {
            try saveDocuments(only: conversation, db: db)
        }
    }

    /// Unsaved change sets after which a conversation's state is saved: `saveStateEvery`, or an
    /// eighth of its messages if more. Saving costs time proportional to the whole document, so
    /// a fixed interval would make receiving into a long conversation ever slower; this keeps it
    /// constant per change set, and replay after a restart under an eighth of the history.
    func saveThreshold(_ conversation: ConversationID) -> Int {
        max(configuration.saveStateEvery, (documents.conversations[conversation]?.messageCount ?? 0) / 8)
    }
}

extension ClientCore {
    /// Rebuilds one document from durable state: its saved state (unless `fromSavedState` is
    /// false), the stored change sets after it, then this device's unsealed operations. Used
    /// after a failed local write (so memory matches the store) and after a late removal.
    func reloadDocument(_ conversation: ConversationID, fromSavedState: Bool = true) throws(ClientError) {
        let (saved, wires) = try store.read { db -> ([UInt8]?, [[UInt8]]) in
            let row = fromSavedState
                ? try Row.fetchOne(
                    db, sql: "SELECT sealed, applied_through FROM documents WHERE conversation = ?",
                    arguments: [Data(conversation.bytes)]) : nil
            let through: Int64 = row.map { $0["applied_through"] } ?? 0
            let wires = try Data.fetchAll(
                db, sql: "SELECT wire FROM change_sets WHERE conversation = ? AND id > ? ORDER BY id",
                arguments: [Data(conversation.bytes), through]
            ).map(Array.init)
            return (row.map { Array($0["sealed"] as Data) }, wires)
        }
        var fresh = DocumentSet()
        if let saved {
            var bytes = try cipher.open(saved, context: Self.documentContext(conversation))
            defer { SecretBytes.wipe(&bytes) }
            do { try fresh.load(snapshot: bytes, for: conversation) } catch { throw .storage("stored state is corrupt") }
        }
        let now = now()
        for wire in wires {
            guard let changeSet = try? ChangeSet(wire: wire), let (_, ops) = try? decrypt(changeSet) else { continue }
            _ = fresh.apply(ops, to: conversation, physicalMillis: now)
        }
        if let batch = pendingOps[conversation] { _ = fresh.apply(batch.ops, to: conversation, physicalMillis: now) }
        if conversation == .library {
            documents.library = fresh.library
        } else {
            documents.conversations[conversation] = fresh.conversations[conversation] ?? ConversationDocument()
        }
    }
}
