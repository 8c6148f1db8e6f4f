import CloakProtocol
import Foundation
import GRDB

// Head claims, incidents and when members were last heard of: what the completeness checks
// keep (ADV-13, ADV-44, ADV-45).
extension SQLiteTransaction {
    func claims() throws -> [HeadClaim] {
        try Row.fetchAll(db, sql: "SELECT conversation, device, seq, hash, claimed_by FROM claims ORDER BY rowid").map { row in
            HeadClaim(
                chain: ChainKey(conversation: try ConversationID(stored: row["conversation"]), author: try DeviceID(stored: row["device"])),
                seq: UInt64(row["seq"] as Int64), hash: try Digest32(stored: row["hash"]),
                claimedBy: try DeviceID(stored: row["claimed_by"]))
        }
    }

    func putClaim(_ claim: HeadClaim) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO claims(conversation, device, seq, hash, claimed_by) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                """
        ).execute(arguments: [
            claim.chain.conversation.data, claim.chain.author.data, Int64(clamping: claim.seq), claim.hash.data,
            claim.claimedBy.data,
        ])
    }

    func deleteClaims(_ key: ChainKey, throughSeq seq: UInt64) throws {
        try db.cachedStatement(sql: "DELETE FROM claims WHERE conversation = ? AND device = ? AND seq <= ?")
            .execute(arguments: [key.conversation.data, key.author.data, Int64(clamping: seq)])
    }

    func incidents() throws -> [Incident] {
        try Row.fetchAll(db, sql: "SELECT record FROM incidents ORDER BY id").compactMap { row in
            Incident(stored: Array(row["record"] as Data))
        }
    }

    func putIncident(_ incident: Incident) throws {
        try db.execute(
            sql: "INSERT INTO incidents(id, record) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET record = excluded.record",
            arguments: [incident.id, Data(incident.stored)])
    }

    func deleteIncident(id: String) throws {
        try db.execute(sql: "DELETE FROM incidents WHERE id = ?", arguments: [id])
    }

    func heard() throws -> [DeviceID: UInt64] {
        var heard: [DeviceID: UInt64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT device, at FROM heard") {
            heard[try DeviceID(stored: row["device"])] = UInt64(row["at"] as Int64)
        }
        return heard
    }

    func setHeard(_ device: DeviceID, at time: UInt64) throws {
        try db.cachedStatement(sql: "INSERT INTO heard(device, at) VALUES (?, ?) ON CONFLICT(device) DO UPDATE SET at = excluded.at")
            .execute(arguments: [device.data, Int64(clamping: time)])
    }
}
