import CloakProtocol
import Foundation
import GRDB

// The outbox's unanswered marks (PROTOCOL.md §19): which change sets a push carried whose
// answer this device never processed.
extension SQLiteTransaction {
    func setUnanswered(hash: ChangeSetHash, _ unanswered: Bool) throws {
        try db.cachedStatement(
            sql: "UPDATE outbox SET unanswered = ? WHERE change_set = (SELECT id FROM change_sets WHERE hash = ?)"
        ).execute(arguments: [unanswered ? 1 : 0, hash.data])
    }

    func unansweredOutbox() throws -> [ChangeSetHash] {
        try Data.fetchAll(
            db,
            sql: """
                SELECT change_sets.hash FROM outbox JOIN change_sets ON change_sets.id = outbox.change_set
                WHERE outbox.unanswered = 1 ORDER BY outbox.change_set
                """
        ).map { try Digest32(stored: $0) }
    }
}
