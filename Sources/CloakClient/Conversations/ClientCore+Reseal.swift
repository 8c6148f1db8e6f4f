import CloakCRDT
import CloakProtocol
import Foundation
import GRDB
import Logging

extension ClientCore {
    /// Re-seals the change sets the server refused with STALE_DEVICE_LOG (PROTOCOL.md §19),
    /// and every later one of their chains: same
    /// operations, same sequence numbers (the refused ones were never stored), newest head and
    /// epoch. Returns whether anything was re-sealed. Does nothing until this device holds the
    /// newest epoch's key.
    @discardableResult
    func resealStaleOutbox() throws(ClientError) -> Bool {
        guard !staleRefused.isEmpty, let state = account, state.keyring.has(epoch: state.log.currentEpoch),
            let lastRemoval = state.log.newestRemovalIndex
        else { return false }
        let pending = try outbox(limit: Int.max >> 1)
        let isStale = { (changeSet: ChangeSet) in
            self.staleRefused.contains(changeSet.hash) && changeSet.header.deviceLogIndex < lastRemoval
        }
        // Refused hashes no longer in the outbox (or written under a now-current head) are done with.
        staleRefused = Set(pending.filter(isStale).map(\.hash))
        guard !staleRefused.isEmpty else { return false }
        // Within a conversation everything after the first stale change set is re-sealed too,
        // so the chain stays continuous.
        var byConversation: [ConversationID: [ChangeSet]] = [:]
        for changeSet in pending { byConversation[changeSet.header.conversation, default: []].append(changeSet) }
        for (conversation, changeSets) in byConversation {
            let ordered = changeSets.sorted { $0.header.seq < $1.header.seq }
            guard let first = ordered.firstIndex(where: isStale) else { continue }
            let redo = Array(ordered[first...])
            var operations: [[CRDTOperation]] = []
            for changeSet in redo {
                guard let (_, ops) = try? decrypt(changeSet) else { throw .storage("cannot re-open our own change set") }
                operations.append(ops)
            }
            let key = ChainKey(conversation: conversation, author: me)
            let saved = chains[key]
            chains[key] = redo[0].header.seq == 1 ? nil : ChainPosition(seq: redo[0].header.seq - 1, hash: redo[0].header.prevHash)
            // One transaction: the old change sets go and the new ones arrive together, so a
            // crash cannot lose the operations in between (they were never stored by the server).
            do {
                try store.write { db in
                    for changeSet in redo {
                        let id = try Int64.fetchOne(
                            db, sql: "SELECT id FROM change_sets WHERE hash = ?", arguments: [Data(changeSet.hash.bytes)])
                        try db.execute(sql: "DELETE FROM outbox WHERE change_set = ?", arguments: [id])
                        try db.execute(sql: "DELETE FROM change_sets WHERE id = ?", arguments: [id])
                    }
                    for ops in operations {
                        let changeSet = try makeChangeSet(ops, conversation: conversation)
                        try persistSealed(changeSet, pendingRows: [], db: db)
                        noteSealed(changeSet)
                    }
                }
            } catch {
                chains[key] = saved
                throw error
            }
            for changeSet in redo { staleRefused.remove(changeSet.hash) }
            logger.info("re-sealed change sets under the newest device-log head", metadata: ["count": "\(redo.count)"])
        }
        return true
    }
}
