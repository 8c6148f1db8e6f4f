import CloakCrypto
import CloakProtocol
import Foundation
import GRDB

extension ClientCore {
    static let pendingKeyContext: [UInt8] = Array("pending-epoch-key".utf8)

    /// Remembers (encrypted, durably) the key of an epoch this device is about to start by a
    /// removal, before the removal is sent: if the reply is lost or the app dies, the key is
    /// installed when the entry shows up in a fetched log (never lost, so the account never
    /// ends up with an epoch nobody holds).
    func rememberPendingEpochKey(_ key: SymmetricKey, epoch: UInt64) throws(ClientError) {
        let sealed = cipher.seal(epoch.littleEndianBytes + key.secret.copyBytes(), context: Self.pendingKeyContext)
        try store.write { db in try db.setMeta("pending-epoch-key", sealed) }
    }

    /// The remembered key for `epoch`, if any.
    func pendingEpochKey(for epoch: UInt64) throws(ClientError) -> SymmetricKey? {
        guard let sealed = try store.read({ db in try db.meta("pending-epoch-key") }) else { return nil }
        var bytes = try cipher.open(sealed, context: Self.pendingKeyContext)
        defer { SecretBytes.wipe(&bytes) }
        guard bytes.count == 40, bytes[0..<8].elementsEqual(epoch.littleEndianBytes) else { return nil }
        return try? SymmetricKey(bytes: Array(bytes[8...]))
    }

    /// Installs a removal this device signed whose new epoch key it remembered: stores the key
    /// and queues its envelopes for the remaining members.
    func installOwnRemovals(_ entries: [DeviceLogEntry]) throws(ClientError) -> Bool {
        var installed = false
        for entry in entries where entry.kind == .removeDevice && entry.signer == me {
            guard account?.keyring.has(epoch: entry.epoch) == false, let key = try pendingEpochKey(for: entry.epoch)
            else { continue }
            try installEpochKey(key, epoch: entry.epoch)
            installed = true
        }
        return installed
    }

    /// Stores a new epoch's key and queues envelopes of it for every active device and the
    /// recovery key.
    func installEpochKey(_ key: SymmetricKey, epoch: UInt64) throws(ClientError) {
        guard var state = account else { throw .noAccount }
        state.keyring.add(key, epoch: epoch)
        account = state
        var recipients = state.log.activeDevices.compactMap { id in state.log.members[id].map { (id, $0) } }
        if let recovery = state.log.recoveryKey { recipients.append((recovery.id, recovery.member)) }
        var envelopes: [KeyEnvelope] = []
        for (id, member) in recipients {
            envelopes.append(try seal(key, epoch: epoch, account: state.account, to: id, member.agreementKey))
        }
        let sealedKey = cipher.seal(key.secret.copyBytes(), context: Self.epochContext(epoch))
        try store.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO epoch_keys(epoch, sealed) VALUES (?, ?)",
                arguments: [Int64(epoch), Data(sealedKey)])
            for envelope in envelopes {
                try db.execute(
                    sql: "INSERT INTO pending_envelopes(wire) VALUES (?)",
                    arguments: [Data(FrameCodec.serialize(envelope.message))])
            }
            try db.execute(sql: "DELETE FROM meta WHERE key = 'pending-epoch-key'")
        }
    }

    /// Envelopes waiting for the server, with their queue ids.
    func queuedEnvelopes(limit: Int = 256) throws(ClientError) -> [(id: Int64, envelope: Cloak_V1_KeyEnvelope)] {
        let rows = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT id, wire FROM pending_envelopes ORDER BY id LIMIT ?", arguments: [limit])
        }
        return rows.compactMap { row in
            guard let message = try? FrameCodec.parse(
                Cloak_V1_KeyEnvelope.self, from: Array(row["wire"] as Data), what: "queued envelope")
            else { return nil }
            return (row["id"], message)
        }
    }

    /// The server stored these queued envelopes.
    func envelopesDelivered(_ ids: [Int64]) throws(ClientError) {
        try store.write { db in
            for id in ids { try db.execute(sql: "DELETE FROM pending_envelopes WHERE id = ?", arguments: [id]) }
        }
    }
}
