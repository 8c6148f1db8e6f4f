import CloakCRDT
import CloakProtocol
import Foundation
import GRDB

extension ClientCore {
    /// Applies PROTOCOL.md §10 after the fact: when a removal arrives late, change sets of the
    /// removed device beyond its cut-off may already be applied here. Every device must end
    /// with the same state, so each affected conversation is rebuilt from its stored change
    /// sets without them (they are deleted, kept as rejected for diagnosis, and reported).
    func enforceRemovals(_ entries: [DeviceLogEntry], db: Database, output: inout CoreOutput) throws {
        for entry in entries where entry.kind == .removeDevice {
            guard let removed = entry.removedDevice else { continue }
            let affected = chains.filter { key, position in
                guard key.author == removed else { return false }
                guard let cutoff = entry.cutoffs.first(where: { $0.conversation == key.conversation }) else { return true }
                return position.seq > cutoff.seq || (position.seq == cutoff.seq && position.hash != cutoff.hash)
            }
            for (key, _) in affected {
                let cutoff = entry.cutoffs.first { $0.conversation == key.conversation }
                try rebuild(key.conversation, dropping: removed, after: cutoff, db: db, output: &output)
            }
        }
    }

    private func rebuild(
        _ conversation: ConversationID, dropping removed: DeviceID, after cutoff: RemovalCutoff?, db: Database,
        output: inout CoreOutput
    ) throws {
        let rows = try Row.fetchAll(
            db, sql: "SELECT id, author, seq, wire FROM change_sets WHERE conversation = ? ORDER BY id",
            arguments: [Data(conversation.bytes)])
        var dropped = 0
        for row in rows {
            guard let changeSet = try? ChangeSet(wire: Array(row["wire"] as Data)) else { continue }
            let header = changeSet.header
            let beyond = header.author == removed
                && (cutoff.map { header.seq > $0.seq || (header.seq == $0.seq && changeSet.hash != $0.hash) } ?? true)
            if beyond {
                try db.execute(sql: "DELETE FROM outbox WHERE change_set = ?", arguments: [row["id"] as Int64])
                try db.execute(sql: "DELETE FROM change_sets WHERE id = ?", arguments: [row["id"] as Int64])
                try db.recordRejected(changeSet.wire, hash: changeSet.hash, reason: "beyondRemovalCutoff", at: now())
                dropped += 1
            }
        }
        guard dropped > 0 else { return }
        // The saved state may contain the dropped operations: rebuild from the change sets.
        try db.execute(sql: "DELETE FROM documents WHERE conversation = ?", arguments: [Data(conversation.bytes)])
        rebuildAfterCommit.insert(conversation)
        let key = ChainKey(conversation: conversation, author: removed)
        if let cutoff {
            chains[key] = ChainPosition(seq: cutoff.seq, hash: cutoff.hash)
            try db.setChain(key, ChainPosition(seq: cutoff.seq, hash: cutoff.hash))
        } else {
            chains[key] = nil
            try db.execute(
                sql: "DELETE FROM chains WHERE conversation = ? AND author = ?",
                arguments: [Data(conversation.bytes), Data(removed.bytes)])
        }
        unsavedChanges[conversation, default: 0] += 1
        output.changed.insert(conversation)
        try raise(
            SecurityEvent(.beyondRemovalCutoff, conversation: conversation, device: removed,
                          detail: "removed \(dropped) change sets written after the device's removal; rebuilt"),
            db, &output)
    }
}
