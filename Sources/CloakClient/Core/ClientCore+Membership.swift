import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol

extension ClientCore {
    /// Prepares a new account with this device as its first member: the self-signed genesis
    /// entry and a random epoch-1 key, sealed to this device (so the server holds it for a
    /// restored device). Nothing is stored until the server has accepted the genesis
    /// (``adopt(log:keys:)``).
    func prepareAccount() throws(ClientError) -> PreparedAccount {
        guard membership.log == nil else { throw .alreadyInitialized }
        let genesis = DeviceLogEntry.genesis(
            device: identity.signing, agreementKey: identity.agreement.publicKey, accountNonce: random.bytes(16),
            createdAtMs: now())
        let log: DeviceLog
        do { log = try DeviceLog(genesis: genesis) } catch { throw .server(error) }
        let key = SymmetricKey.random(using: random)
        let envelope = try seal(key, epoch: 1, account: log.account, to: me, identity.agreement.publicKey)
        return PreparedAccount(genesis: genesis, log: log, key: key, envelope: envelope)
    }

    /// Stores a verified log and epoch keys as this device's account.
    func adopt(log: DeviceLog, keys: [UInt64: SymmetricKey]) throws(ClientError) {
        guard membership.log == nil else { throw .alreadyInitialized }
        var updated = membership
        let cipher = cipher
        try store.write { tx in try updated.adopt(log, keys: keys, tx, cipher: cipher) }
        membership = updated
    }

    /// Opens the envelopes a joining device received (as itself or as the recovery key) and
    /// stores the account.
    func join(log: DeviceLog, envelopes: [KeyEnvelope]) throws(ClientError) {
        guard membership.log == nil else { throw .alreadyInitialized }
        let keys = Self.openAll(envelopes, log: log, recipient: me, key: identity.agreement)
        guard keys[log.currentEpoch] != nil else { throw .missingEpochKey(log.currentEpoch) }
        try adopt(log: log, keys: keys)
    }

    /// The epoch keys in `envelopes` that open for `recipient` (the first per epoch).
    static func openAll(_ envelopes: [KeyEnvelope], log: DeviceLog, recipient: DeviceID, key: X25519PrivateKey)
        -> [UInt64: SymmetricKey]
    {
        var keys: [UInt64: SymmetricKey] = [:]
        for envelope in envelopes {
            if case .opened(let opened) = Membership.openEnvelope(envelope, log: log, recipient: recipient, key: key) {
                keys[envelope.epoch] = keys[envelope.epoch] ?? opened
            }
        }
        return keys
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
    func envelopesForAllEpochs(to recipient: DeviceID, _ recipientKey: X25519PublicKey) throws(ClientError) -> [KeyEnvelope] {
        let log = try requireAccount()
        return try membership.keyring.epochKeys.sorted { $0.key < $1.key }.map { epoch, key throws(ClientError) in
            try seal(key, epoch: epoch, account: log.account, to: recipient, recipientKey)
        }
    }

    /// Throws unless this device holds the key of every epoch of its log. What a new device or
    /// a recovery key receives is sealed from this device's keyring: handing out an incomplete
    /// one (a server withholding an envelope from this device, ADV-45) would leave the new
    /// member unable to read an epoch for good, so the flow waits for the key instead.
    func requireEveryEpochKey(_ log: DeviceLog) throws(ClientError) {
        guard log.currentEpoch > 0 else { return }
        for epoch in 1...log.currentEpoch where !membership.keyring.has(epoch: epoch) { throw .missingEpochKey(epoch) }
    }

    // MARK: Entries this device signs

    /// An `add device` entry for a new device, signed by this device after the current head.
    func prepareAddDevice(signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey) throws(ClientError) -> DeviceLogEntry {
        let log = try requireAccount()
        guard log.members[DeviceID(signingKey: signingKey)] == nil else { throw .pairingReused }
        try requireEveryEpochKey(log)
        return DeviceLogEntry.add(
            .addDevice, signingKey: signingKey, agreementKey: agreementKey, after: log, signer: identity.signing,
            createdAtMs: now())
    }

    /// A `set recovery` entry registering a recovery key. Replacing one starts a new epoch: its
    /// key is remembered durably before the entry is sent (as for a removal), so the account
    /// never ends up with an epoch nobody holds.
    func prepareSetRecovery(_ keys: RecoveryKeys) throws(ClientError) -> (DeviceLogEntry, SymmetricKey?) {
        let log = try requireAccount()
        try requireEveryEpochKey(log)
        let entry = DeviceLogEntry.add(
            .setRecovery, signingKey: keys.signing.publicKey, agreementKey: keys.agreement.publicKey, after: log,
            signer: identity.signing, createdAtMs: now())
        guard entry.epoch > log.currentEpoch else { return (entry, nil) }
        let key = SymmetricKey.random(using: random)
        let cipher = cipher
        try store.write { tx in try Membership.rememberPendingKey(key, epoch: entry.epoch, tx, cipher: cipher) }
        return (entry, key)
    }

    /// A `remove device` entry with the removed device's cut-offs (its newest change set this
    /// device received intact, per conversation; PROTOCOL.md §10) and the next epoch's key, which is
    /// remembered durably before the entry is sent.
    func prepareRemove(_ device: DeviceID) throws(ClientError) -> (entry: DeviceLogEntry, key: SymmetricKey) {
        let log = try requireAccount()
        guard device != me else { throw .invalidEdit("a device cannot remove itself; remove it from another device") }
        guard log.isActive(device, atIndex: log.headIndex) else { throw .unknownDevice(device) }
        let cutoffs = self.cutoffs(of: device)
        guard cutoffs.count <= configuration.limits.maxRemovalCutoffs else {
            throw .invalidEdit("the device wrote in more conversations than one removal can list")
        }
        let entry = DeviceLogEntry.remove(device, cutoffs: cutoffs, after: log, signer: identity.signing, createdAtMs: now())
        let key = SymmetricKey.random(using: random)
        let cipher = cipher
        try store.write { tx in try Membership.rememberPendingKey(key, epoch: entry.epoch, tx, cipher: cipher) }
        return (entry, key)
    }

    /// Appends an entry the server accepted to the local log (idempotent: the log may already
    /// hold it, fetched by the sync connection meanwhile). For an entry that starts an epoch (a
    /// removal, a recovery key's replacement) it installs the new epoch key and queues its
    /// envelopes for every active device and the current recovery key; a removal's cut-offs
    /// apply. For a new recovery key it returns every older epoch key sealed to it.
    ///
    /// `output` receives what taking the longer log showed the app — the conversations it changed
    /// and the events of change sets it judged: held ones now admitted or refused (an assistant's
    /// user-role write, ADV-49), or accepted ones the entry's cut-offs drop — which the flow
    /// surfaces like any delivery's.
    func commitAppended(_ entry: DeviceLogEntry, newEpochKey: SymmetricKey? = nil, output: inout CoreOutput)
        throws(ClientError) -> [KeyEnvelope]
    {
        var log = try requireAccount()
        if log.hash(atIndex: entry.index) != entry.hash {
            do { try log.append(entry) } catch { throw .server(error) }
            // Only what the app is told: the flow asks for its own follow-ups.
            let taken = try takeLog(log)
            output.events += taken.events
            output.changed.formUnion(taken.changed)
        }
        let startsEpoch = entry.index > 0 && membership.log?.epoch(atIndex: entry.index - 1).map { entry.epoch > $0 } == true
        if startsEpoch, let newEpochKey, !membership.keyring.has(epoch: entry.epoch) {
            try installEpochKey(newEpochKey, epoch: entry.epoch)
        }
        if entry.kind == .setRecovery, let id = entry.subject, let key = entry.subjectAgreementKey {
            // The new epoch's envelope to the recovery key is in the queue already.
            return try envelopesForAllEpochs(to: id, key).filter { !startsEpoch || $0.epoch != entry.epoch }
        }
        return []
    }

    /// ``commitAppended(_:newEpochKey:output:)`` for a log built locally, with no server and
    /// no held change sets whose events could matter (tests, local account set-up).
    func commitAppended(_ entry: DeviceLogEntry, newEpochKey: SymmetricKey? = nil) throws(ClientError) -> [KeyEnvelope] {
        var output = CoreOutput()
        return try commitAppended(entry, newEpochKey: newEpochKey, output: &output)
    }

    // MARK: Logs and keys from the server

    /// Accepts a device log served by the server: it must extend the pinned one (ADV-10,
    /// ADV-12, ADV-13). New entries are stored; held change sets are retried.
    func receiveDeviceLog(_ wires: [[UInt8]]) throws(ClientError) -> CoreOutput {
        var output = try acceptServedLog(wires)
        try checkLogStaleness(&output)
        return output
    }

    /// After a served log: a log still shorter than what a verified record proves is withheld
    /// (this device seals nothing meanwhile); one that caught up resolves the incident.
    func checkLogStaleness(_ output: inout CoreOutput) throws(ClientError) {
        let id = Incident(kind: .deviceLogWithheld, detail: "", openedAt: 0).id
        if membership.isKnownStale, !membership.removed {
            try open(Incident(
                kind: .deviceLogWithheld,
                detail: "a member's signed record names device-log entries the server does not serve; this device "
                    + "writes nothing new until it has them", openedAt: now()), &output)
        } else if incidents[id] != nil {
            try resolve(id, &output)
            output.pushOutbox = true
        }
    }

    private func acceptServedLog(_ wires: [[UInt8]]) throws(ClientError) -> CoreOutput {
        guard let pinned = membership.log else { return CoreOutput() }
        let served: [DeviceLogEntry]
        do { served = try wires.map { w throws(ProtocolError) in try DeviceLogEntry(wire: w) } } catch {
            return raise(SecurityEvent(.deviceLogForgery, detail: "served entry does not parse: \(error.message)"))
        }
        let extended: DeviceLog
        do { extended = try pinned.extended(with: served) } catch {
            let event: SecurityEvent
            switch error {
            case .rollback(let pinnedLength, let servedLength):
                // One incident while it lasts (ADV-12, ADV-44); the sync machine re-appends the
                // entries the server lost (restore appends).
                var output = CoreOutput()
                output.servedLogLength = servedLength
                try open(Incident(
                    kind: .deviceLogRollback,
                    detail: "the server served \(servedLength) device-log entries; this device holds \(pinnedLength)",
                    openedAt: now()), &output)
                return output
            case .fork(let index): event = SecurityEvent(.deviceLogFork, seq: UInt64(index), detail: "served log differs at entry \(index)")
            case .invalid(let reason): event = SecurityEvent(.deviceLogForgery, detail: reason.message)
            }
            return raise(event)
        }
        var output = try takeLog(extended)
        try resolve(Incident(kind: .deviceLogRollback, detail: "", openedAt: 0).id, &output)
        return output
    }

    /// Stores a verified extension of the pinned log and acts on its new entries: a removal of
    /// this device wipes its keys (§23); removals of others are enforced (§10); held change
    /// sets are retried; a removal this device signed installs its remembered epoch key.
    private func takeLog(_ extended: DeviceLog) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        let now = now()
        // A device verified its removal; an assistant its revocation (PROTOCOL.md §29).
        let removed = extended.members[me]?.removedAt != nil || extended.assistants[me]?.endedAt != nil
        let before = membership
        let newEntries: [DeviceLogEntry]
        do {
            newEntries = try store.write { tx in
                // Admission of held change sets below needs the new log in place.
                let added = try membership.extend(to: extended, tx)
                try announceAddedDevices(added, in: extended, tx, &output)
                if removed && !membership.removed { try membership.markRemoved(tx) }
                try enforceRemovals(added, tx, &output)
                try retryHeld(after: nil, tx, &output, now: now)
                return added
            }
        } catch {
            membership = before
            throw error
        }
        guard !newEntries.isEmpty else { return output }
        try rebuildPending()
        if removed {
            // The wiped keys' older copies in the store's files go too (checked byte by byte).
            if !before.removed { try store.purgeDeleted() }
            membership.forgetKeys()
            output.removed = true
            return output
        }
        if try installOwnRemovals(newEntries) { output.pushEnvelopes = true }
        if !membership.keyring.has(epoch: extended.currentEpoch) { output.fetchKeyEnvelopes = true }
        return output
    }

    /// Accepts key envelopes addressed to this device: each must be signed by a member that had
    /// not been removed when its epoch began, and bound to this account, epoch and device. An
    /// assistant receives conversation keys instead (``receiveConversationKeys(_:)``).
    func receiveEnvelopes(_ envelopes: [KeyEnvelope], conversationKeys: [ConversationKeyEnvelope] = [])
        throws(ClientError) -> CoreOutput
    {
        var output = CoreOutput()
        guard let log = membership.log, !membership.removed else { return output }
        if membership.isAssistant(me) {
            // An assistant never takes an epoch key, whoever sealed it (§29): it would read the
            // whole account.
            return try receiveConversationKeys(conversationKeys, refusing: envelopes)
        }
        var added: [(UInt64, SymmetricKey)] = []
        var events: [SecurityEvent] = []
        for envelope in envelopes {
            switch Membership.openEnvelope(envelope, log: log, recipient: me, key: identity.agreement) {
            case .opened(let key):
                if let existing = membership.keyring.epochKeys[envelope.epoch] ?? added.first(where: { $0.0 == envelope.epoch })?.1 {
                    if existing != key {
                        events.append(SecurityEvent(.keyEnvelopeRejected, device: envelope.sender,
                                                    detail: "a second, different key for epoch \(envelope.epoch)"))
                    }
                    continue
                }
                added.append((envelope.epoch, key))
            case .refused(let reason):
                if envelope.epoch > log.currentEpoch, let sender = log.members[envelope.sender],
                    sender.signingKey.isValidSignature(envelope.signature, for: envelope.signedMessage)
                {
                    // A member opened an epoch this device's log does not show yet: the log is
                    // stale (a removal it has not seen). Not an attack: fetch the log.
                    membership.require(epoch: envelope.epoch)
                    output.fetchDeviceLog = true
                    continue
                }
                events.append(SecurityEvent(.keyEnvelopeRejected, device: envelope.sender, detail: reason))
            }
        }
        let now = now()
        let before = membership
        let cipher = cipher
        do {
            try store.write { tx in
                // Admission of held change sets below needs the new keys in place.
                for (epoch, key) in added { try membership.addKey(key, epoch: epoch, tx, cipher: cipher) }
                for event in events { try raise(event, tx, &output) }
                if !added.isEmpty { try retryHeld(after: nil, tx, &output, now: now) }
            }
        } catch {
            membership = before
            throw error
        }
        return output
    }

    // MARK: New epochs this device starts

    /// Installs an epoch this device started (a removal, a recovery key's replacement) whose key
    /// it remembered: stores the key and queues its envelopes for the remaining members.
    func installOwnRemovals(_ entries: [DeviceLogEntry]) throws(ClientError) -> Bool {
        var installed = false
        let cipher = cipher
        for entry in entries where entry.signer == me && (entry.kind.startsEpoch || entry.kind == .setRecovery) {
            guard !membership.keyring.has(epoch: entry.epoch),
                let key = try store.read({ tx in try Membership.pendingKey(for: entry.epoch, tx, cipher: cipher) })
            else { continue }
            try installEpochKey(key, epoch: entry.epoch)
            installed = true
        }
        return installed
    }

    /// Stores a new epoch's key and queues envelopes of it for every active device and the
    /// recovery key, and of each remaining assistant's conversation keys for it (§29).
    func installEpochKey(_ key: SymmetricKey, epoch: UInt64) throws(ClientError) {
        let log = try requireAccount()
        var recipients = log.activeDevices.compactMap { id in log.members[id].map { (id, $0) } }
        if let recovery = log.recoveryKey { recipients.append((recovery.id, recovery.member)) }
        var envelopes: [Cloak_V1_KeyEnvelope] = []
        for (id, member) in recipients {
            envelopes.append(try seal(key, epoch: epoch, account: log.account, to: id, member.agreementKey).message)
        }
        envelopes += try assistantEnvelopes(of: key, epoch: epoch, log)
        var updated = membership
        let cipher = cipher
        try store.write { tx in
            try updated.addKey(key, epoch: epoch, tx, cipher: cipher)
            for envelope in envelopes { try tx.queueEnvelope(FrameCodec.serialize(envelope)) }
            try tx.deleteMeta(.pendingEpochKey)
        }
        membership = updated
    }

    /// Envelopes waiting for the server, with their queue ids.
    func queuedEnvelopes(limit: Int = 256) throws(ClientError) -> [(id: Int64, envelope: Cloak_V1_KeyEnvelope)] {
        let rows = try store.read { tx in try tx.queuedEnvelopes(limit: limit) }
        return rows.compactMap { row in
            guard let message = try? FrameCodec.parse(Cloak_V1_KeyEnvelope.self, from: row.wire, what: "queued envelope")
            else { return nil }
            return (row.id, message)
        }
    }

    /// The server stored these queued envelopes.
    func envelopesDelivered(_ ids: [Int64]) throws(ClientError) {
        try store.write { tx in try tx.deleteQueuedEnvelopes(ids) }
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
}

/// A new account before the server accepted its genesis.
struct PreparedAccount {
    let genesis: DeviceLogEntry
    let log: DeviceLog
    let key: SymmetricKey
    let envelope: KeyEnvelope
}
