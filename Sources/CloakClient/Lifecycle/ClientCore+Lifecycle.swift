import CloakCrypto
public import CloakProtocol
import Foundation
import GRDB

extension ClientCore {
    /// An `add device` entry for a new device, signed by this device after the current head.
    func prepareAddDevice(signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey) throws(ClientError)
        -> DeviceLogEntry
    {
        let state = try requireAccount()
        guard state.log.members[DeviceID(signingKey: signingKey)] == nil else { throw .pairingReused }
        return DeviceLogEntry.add(
            .addDevice, signingKey: signingKey, agreementKey: agreementKey, after: state.log, signer: identity.signing,
            createdAtMs: now())
    }

    /// A `set recovery` entry registering a recovery key.
    func prepareSetRecovery(_ keys: RecoveryKeys) throws(ClientError) -> DeviceLogEntry {
        let state = try requireAccount()
        return DeviceLogEntry.add(
            .setRecovery, signingKey: keys.signing.publicKey, agreementKey: keys.agreement.publicKey, after: state.log,
            signer: identity.signing, createdAtMs: now())
    }

    /// A `remove device` entry with the removed device's cut-offs (its last change set this
    /// device accepted, per conversation; PROTOCOL.md §10) and the next epoch's key, which is
    /// remembered durably before the entry is sent.
    func prepareRemove(_ device: DeviceID) throws(ClientError) -> (entry: DeviceLogEntry, key: SymmetricKey) {
        let state = try requireAccount()
        guard device != me else { throw .invalidEdit("a device cannot remove itself; remove it from another device") }
        guard state.log.isActive(device, atIndex: state.log.headIndex) else { throw .unknownDevice(device) }
        let cutoffs = chains.filter { $0.key.author == device }.map {
            RemovalCutoff(conversation: $0.key.conversation, seq: $0.value.seq, hash: $0.value.hash)
        }
        guard cutoffs.count <= configuration.limits.maxRemovalCutoffs else {
            throw .invalidEdit("the device wrote in more conversations than one removal can list")
        }
        let entry = DeviceLogEntry.remove(
            device, cutoffs: cutoffs, after: state.log, signer: identity.signing, createdAtMs: now())
        let key = SymmetricKey.random(using: random)
        try rememberPendingEpochKey(key, epoch: entry.epoch)
        return (entry, key)
    }

    /// Appends an entry the server accepted to the local log (idempotent: the log may already
    /// hold it, fetched by the sync connection meanwhile). For a removal it installs the new
    /// epoch key, queues its envelopes and applies the removal's cut-offs; for a new recovery
    /// key it returns every epoch key sealed to it.
    func commitAppended(_ entry: DeviceLogEntry, newEpochKey: SymmetricKey? = nil) throws(ClientError)
        -> [KeyEnvelope]
    {
        guard var state = account else { throw .noAccount }
        if state.log.hash(atIndex: entry.index) != entry.hash {
            do { try state.log.append(entry) } catch { throw .server(error) }
            account = state
            var output = CoreOutput()
            let now = now()
            try store.write { db in
                try db.execute(
                    sql: "INSERT OR REPLACE INTO device_log(idx, wire) VALUES (?, ?)",
                    arguments: [Int64(entry.index), Data(entry.wire)])
                try enforceRemovals([entry], db: db, output: &output)
                try retryHeld(after: nil, db: db, output: &output, now: now)
            }
            try rebuildPending()
        }
        if entry.kind == .removeDevice, let newEpochKey, account?.keyring.has(epoch: entry.epoch) == false {
            try installEpochKey(newEpochKey, epoch: entry.epoch)
        }
        if entry.kind == .setRecovery, let id = entry.subject, let key = entry.subjectAgreementKey {
            return try envelopesForAllEpochs(to: id, key)
        }
        return []
    }

    /// Verifies a served device log from genesis (a device joining has nothing pinned yet), and
    /// that it lists `subject` with these keys.
    static func verifyJoiningLog(_ wires: [[UInt8]], subject: Ed25519PublicKey) throws(ClientError)
        -> (log: DeviceLog, addEntry: DeviceLogEntry)
    {
        let log: DeviceLog
        do {
            log = try DeviceLog(verifying: wires.map { w throws(ProtocolError) in try DeviceLogEntry(wire: w) })
        } catch { throw .deviceLog(.invalid(error)) }
        guard let entry = log.entries.last(where: { $0.subjectSigningKey == subject && $0.kind == .addDevice }) else {
            throw .pairingNotCompleted
        }
        return (log, entry)
    }

    /// Opens the envelopes a joining device received (as itself or as the recovery key) and
    /// stores the account.
    func join(log: DeviceLog, envelopes: [KeyEnvelope], recipient: (id: DeviceID, key: X25519PrivateKey))
        throws(ClientError)
    {
        guard account == nil else { throw .alreadyInitialized }
        var keys: [UInt64: SymmetricKey] = [:]
        for envelope in envelopes {
            if case .opened(let key) = Self.openEnvelope(envelope, log: log, recipient: recipient.id, key: recipient.key) {
                keys[envelope.epoch] = keys[envelope.epoch] ?? key
            }
        }
        guard keys[log.currentEpoch] != nil else { throw .missingEpochKey(log.currentEpoch) }
        try adopt(log: log, keys: keys)
    }

    /// The devices of the account, newest entry last.
    func deviceList() throws(ClientError) -> [DeviceInfo] {
        let state = try requireAccount()
        return state.log.members.filter { !$0.value.isRecoveryKey }.map { id, member in
            DeviceInfo(id: id, addedAt: state.log.entries[Int(member.addedAt)].createdAtMs,
                       isActive: member.removedAt == nil, isThisDevice: id == me)
        }.sorted { $0.addedAt < $1.addedAt }
    }
}

/// A device of the account, as `cloak devices` lists it.
public struct DeviceInfo: Sendable, Hashable {
    /// Its id.
    public let id: DeviceID
    /// When it was added (the adding device's clock, ms since the Unix epoch).
    public let addedAt: UInt64
    /// False once removed.
    public let isActive: Bool
    /// True for the device this client runs on.
    public let isThisDevice: Bool
}
