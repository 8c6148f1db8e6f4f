import CloakCrypto
import CloakProtocol
import Foundation
import GRDB

extension ClientCore {
    /// Prepares a new account with this device as its first member: the self-signed genesis
    /// entry and a random epoch-1 key, sealed to this device (so the server holds it for a
    /// restored device). Nothing is stored until the server has accepted the genesis
    /// (``adopt(log:keys:)``).
    func prepareAccount() throws(ClientError)
        -> (genesis: DeviceLogEntry, log: DeviceLog, key: SymmetricKey, envelope: KeyEnvelope)
    {
        guard account == nil else { throw .alreadyInitialized }
        let genesis = DeviceLogEntry.genesis(
            device: identity.signing, agreementKey: identity.agreement.publicKey, accountNonce: random.bytes(16),
            createdAtMs: now())
        let log: DeviceLog
        do { log = try DeviceLog(genesis: genesis) } catch { throw .server(error) }
        let key = SymmetricKey.random(using: random)
        let envelope = try seal(key, epoch: 1, account: log.account, to: me, identity.agreement.publicKey)
        return (genesis, log, key, envelope)
    }

    /// Stores a verified log and epoch keys as this device's account.
    func adopt(log: DeviceLog, keys: [UInt64: SymmetricKey]) throws(ClientError) {
        var state = AccountState(log: log)
        for (epoch, key) in keys { state.keyring.add(key, epoch: epoch) }
        let sealedKeys = keys.map { epoch, key in (epoch, cipher.seal(key.secret.copyBytes(), context: Self.epochContext(epoch))) }
        try store.write { db in
            for (index, entry) in log.entries.enumerated() {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO device_log(idx, wire) VALUES (?, ?)", arguments: [index, Data(entry.wire)])
            }
            for (epoch, sealed) in sealedKeys {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO epoch_keys(epoch, sealed) VALUES (?, ?)",
                    arguments: [Int64(epoch), Data(sealed)])
            }
        }
        account = state
    }

    func seal(_ key: SymmetricKey, epoch: UInt64, account: AccountID, to recipient: DeviceID, _ recipientKey: X25519PublicKey)
        throws(ClientError) -> KeyEnvelope
    {
        do {
            return try KeyEnvelope.seal(
                key, epoch: epoch, account: account, recipient: recipient, recipientKey: recipientKey, sender: me,
                signer: identity.signing, random: random)
        } catch { throw .crypto(error) }
    }

    /// Every epoch key this device holds, sealed to `recipient` (linking a device, setting a
    /// recovery key).
    func envelopesForAllEpochs(to recipient: DeviceID, _ recipientKey: X25519PublicKey) throws(ClientError)
        -> [KeyEnvelope]
    {
        let state = try requireAccount()
        return try state.keyring.epochKeys.sorted { $0.key < $1.key }.map { epoch, key throws(ClientError) in
            try seal(key, epoch: epoch, account: state.account, to: recipient, recipientKey)
        }
    }

    /// Accepts a device log served by the server: it must extend the pinned one (ADV-10,
    /// ADV-12, ADV-13). New entries are stored; held change sets are retried.
    func receiveDeviceLog(_ wires: [[UInt8]]) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        guard var state = account else { return output }
        let served: [DeviceLogEntry]
        do { served = try wires.map { w throws(ProtocolError) in try DeviceLogEntry(wire: w) } } catch {
            try store.write { db in
                try raise(SecurityEvent(.deviceLogForgery, detail: "served entry does not parse: \(error.message)"), db, &output)
            }
            return output
        }
        let previousLength = state.log.entries.count
        do {
            state.log = try state.log.extended(with: served)
        } catch {
            let event: SecurityEvent =
                switch error {
                case .rollback(let pinned, let servedLength):
                    SecurityEvent(.deviceLogRollback, detail: "server served \(servedLength) entries, we hold \(pinned)")
                case .fork(let index): SecurityEvent(.deviceLogFork, detail: "served log differs at entry \(index)")
                case .invalid(let reason): SecurityEvent(.deviceLogForgery, detail: reason.message)
                }
            try store.write { db in try raise(event, db, &output) }
            return output
        }
        guard state.log.entries.count > previousLength else { return output }
        account = state
        let newEntries = Array(state.log.entries[previousLength...])
        let removed = state.log.members[me]?.removedAt != nil
        let now = now()
        try store.write { db in
            for entry in newEntries {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO device_log(idx, wire) VALUES (?, ?)",
                    arguments: [Int64(entry.index), Data(entry.wire)])
            }
            if removed {
                // PROTOCOL.md §23: a device that verifies its own removal wipes its keys.
                try db.setMeta("removed", [1])
                try db.execute(sql: "DELETE FROM epoch_keys")
                try db.execute(sql: "DELETE FROM pending_envelopes")
            }
            try enforceRemovals(newEntries, db: db, output: &output)
            try retryHeld(after: nil, db: db, output: &output, now: now)
        }
        try rebuildPending()
        if try installOwnRemovals(newEntries) { output.pushEnvelopes = true }
        if removed {
            removedFromAccount = true
            account?.keyring = Keyring()
            output.removed = true
        }
        if !state.keyring.has(epoch: state.log.currentEpoch) { output.fetchKeyEnvelopes = true }
        return output
    }

    /// Accepts key envelopes addressed to this device: each must be signed by a member that had
    /// not been removed when its epoch began, and bound to this account, epoch and device.
    func receiveEnvelopes(_ envelopes: [KeyEnvelope], as recipient: (id: DeviceID, key: X25519PrivateKey)? = nil)
        throws(ClientError) -> CoreOutput
    {
        var output = CoreOutput()
        guard var state = account else { return output }
        let (recipientID, recipientKey) = recipient ?? (me, identity.agreement)
        var added: [(UInt64, SymmetricKey)] = []
        var events: [SecurityEvent] = []
        for envelope in envelopes {
            switch Self.openEnvelope(envelope, log: state.log, recipient: recipientID, key: recipientKey) {
            case .opened(let key):
                if let existing = state.keyring.epochKeys[envelope.epoch] {
                    if existing != key {
                        events.append(SecurityEvent(.keyEnvelopeRejected, device: envelope.sender,
                                                    detail: "a second, different key for epoch \(envelope.epoch)"))
                    }
                    continue
                }
                state.keyring.add(key, epoch: envelope.epoch)
                added.append((envelope.epoch, key))
            case .refused(let reason):
                events.append(SecurityEvent(.keyEnvelopeRejected, device: envelope.sender, detail: reason))
            }
        }
        account = state
        let now = now()
        let sealed = added.map { ($0.0, cipher.seal($0.1.secret.copyBytes(), context: Self.epochContext($0.0))) }
        try store.write { db in
            for (epoch, blob) in sealed {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO epoch_keys(epoch, sealed) VALUES (?, ?)",
                    arguments: [Int64(epoch), Data(blob)])
            }
            for event in events { try raise(event, db, &output) }
            if !added.isEmpty { try retryHeld(after: nil, db: db, output: &output, now: now) }
        }
        return output
    }

    static func openEnvelope(_ envelope: KeyEnvelope, log: DeviceLog, recipient: DeviceID, key: X25519PrivateKey)
        -> EnvelopeOutcome
    {
        guard envelope.account == log.account else { return .refused("envelope for another account") }
        guard let sender = log.members[envelope.sender] else { return .refused("sender was never a member") }
        guard let start = log.entries.firstIndex(where: { $0.epoch == envelope.epoch }) else {
            return .refused("epoch \(envelope.epoch) has not started")
        }
        if let removedAt = sender.removedAt, removedAt <= UInt64(start) {
            return .refused("sender was removed before epoch \(envelope.epoch) began")
        }
        do {
            return .opened(try envelope.open(with: key, recipient: recipient, senderKey: sender.signingKey))
        } catch {
            return .refused("envelope check failed: \(error)")
        }
    }
}

/// The outcome of checking one key envelope.
enum EnvelopeOutcome {
    case opened(SymmetricKey)
    case refused(String)
}

extension ClientCore {
    /// Rebuilds the conversations a late removal touched, from their remaining change sets.
    func rebuildPending() throws(ClientError) {
        let targets = rebuildAfterCommit
        rebuildAfterCommit = []
        for conversation in targets { try reloadDocument(conversation, fromSavedState: false) }
    }
}
