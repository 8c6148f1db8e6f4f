public import CloakCRDT
public import CloakCrypto
public import CloakProtocol

// Hooks for the simulator, the tests and the benchmarks: they move change sets between devices
// without a server, as a deterministic network (or a hostile one) would. Not part of the
// app-facing API.
extension ClientEngine {
    /// This device's public keys (what a pairing payload carries).
    public func publicKeys() -> (signing: Ed25519PublicKey, agreement: X25519PublicKey) {
        (core.identity.signing.publicKey, core.identity.agreement.publicKey)
    }

    /// Creates an account locally without telling any server.
    public func createAccountLocally() throws(ClientError) {
        let prepared = try core.prepareAccount()
        try core.adopt(log: prepared.log, keys: [1: prepared.key])
    }

    /// Adds a device locally (no server): returns the device-log entries and the envelopes
    /// sealed to it, for ``joinLocally(log:envelopes:)`` on the new device.
    public func addDeviceLocally(signing: Ed25519PublicKey, agreement: X25519PublicKey) throws(ClientError)
        -> (log: [[UInt8]], envelopes: [KeyEnvelope])
    {
        let entry = try core.prepareAddDevice(signingKey: signing, agreementKey: agreement)
        _ = try core.commitAppended(entry)
        let envelopes = try core.envelopesForAllEpochs(to: DeviceID(signingKey: signing), agreement)
        return (deviceLogWires(), envelopes)
    }

    /// Joins an account from a device log and envelopes (no server, no pairing mailbox).
    public func joinLocally(log wires: [[UInt8]], envelopes: [KeyEnvelope]) throws(ClientError) {
        let log: DeviceLog
        do { log = try DeviceLog(verifying: wires.map { w throws(ProtocolError) in try DeviceLogEntry(wire: w) }) } catch {
            throw .deviceLog(.invalid(error))
        }
        try core.join(log: log, envelopes: envelopes)
    }

    /// Seals pending streamed text and returns every unacknowledged change set, marking them
    /// acknowledged (as a server would after storing them).
    public func takeOutbox() throws(ClientError) -> [[UInt8]] {
        _ = try core.flushDueBatches(force: true)
        let batch = try core.outboxChangeSets(limit: Int.max >> 1)
        try core.acknowledge(batch.map(\.hash))
        return batch.map(\.wire)
    }

    /// Delivers change sets as a server's `Deliver` frame would; returns the security events.
    @discardableResult
    public func deliver(_ items: [(cursor: UInt64, wire: [UInt8])]) throws(ClientError) -> [SecurityEvent] {
        let output = try core.receive(items)
        surface(output)
        return output.events
    }

    /// Delivers a device log as a server's `DeviceLogEntries` reply would.
    @discardableResult
    public func deliverDeviceLog(_ wires: [[UInt8]]) throws(ClientError) -> [SecurityEvent] {
        let output = try core.receiveDeviceLog(wires)
        surface(output)
        return output.events
    }

    /// Delivers key envelopes as a server's `KeyEnvelopes` reply would.
    @discardableResult
    public func deliverEnvelopes(_ envelopes: [KeyEnvelope]) throws(ClientError) -> [SecurityEvent] {
        let output = try core.receiveEnvelopes(envelopes)
        surface(output)
        return output.events
    }

    /// The device log this device has verified, serialised.
    public func deviceLogWires() -> [[UInt8]] {
        core.log?.entries.map(\.wire) ?? []
    }

    /// Change sets held for a missing log entry, key or gap.
    public var heldCount: Int { core.ledger.held.count }

    /// How many rejected change sets the store keeps.
    public func rejectedCount() throws(ClientError) -> Int {
        try core.store.read { tx in try tx.rejectedCount() }
    }

    /// Every accepted change set, in local order, as stored (ciphertext).
    public func storedChangeSetWires() throws(ClientError) -> [[UInt8]] {
        try core.store.read { tx in try tx.changeSets(in: nil, after: 0).map(\.wire) }
    }

    /// A snapshot of `conversation` now, as the sync machine would upload it.
    public func makeSnapshot(of conversation: ConversationID) throws(ClientError) -> Snapshot? {
        core.documents.sinceSnapshot[conversation] = Int.max
        defer { core.documents.pendingSnapshot = nil }
        return try core.snapshotIfDue()
    }

    /// Delivers snapshots as a server's `SnapshotList` reply would (bootstrap).
    @discardableResult
    public func deliverSnapshots(_ snapshots: [Snapshot]) throws(ClientError) -> [SecurityEvent] {
        let output = try core.loadSnapshots(snapshots)
        surface(output)
        return output.events
    }

    /// One message, rendered (any branch), or nil when this device does not have it.
    public func message(_ id: MessageID, in conversation: ConversationID) -> RenderedMessage? {
        core.documents.conversations[conversation]?.message(id)
    }

    /// A line about the machine's state, for the simulator's failure reports.
    public var diagnostics: String {
        "phase \(machine.phase) healing(rollback \(machine.healing.rollback) scanned \(machine.healing.scanned) "
            + "busy \(machine.healing.busy) restore \(machine.healing.restoreQueue.count)) canSeal \(core.membership.canSeal) "
            + "stale \(core.membership.isKnownStale) held \(core.ledger.held.count) pending \(core.outbox.pending.count) "
            + "push \(machine.pushInFlight != nil) retryAt \(machine.pushRetryAt) flows \(machine.flows.current.map { "\($0.flow)".prefix(40) } ?? "none") "
            + "wake \(machine.flows.wakeAt.map { $0 % 1_000_000 } ?? 0) request \(machine.flows.current?.request ?? 0) "
            + "deadlines \(machine.deadlines.values.map { $0.at % 1_000_000 }) batch \(core.nextBatchDeadline.map { $0 % 1_000_000 } ?? 0)"
    }

    /// The newest verified position of `author`'s chain in `conversation` (0: none), and how
    /// many positions of it this device knows exist beyond that.
    public func chainPosition(_ conversation: ConversationID, author: DeviceID) -> (seq: UInt64, knownMissing: UInt64) {
        let key = ChainKey(conversation: conversation, author: author)
        return (core.ledger.chains[key]?.seq ?? 0, core.expectations.missing(chains: core.ledger.chains)[key] ?? 0)
    }

    /// Whether an agreed link acceptance is stored, waiting to be committed (the flow resumes
    /// it after a restart).
    public var hasPendingAcceptance: Bool { (try? core.pendingAcceptance()) != nil }

    /// Change sets held until a device-log entry, an epoch key or a gap arrives.
    public var heldChangeSets: Int { core.ledger.held.count }

    /// A 16-byte digest of this device's key of `epoch` (nil: not held): the simulator
    /// compares two devices' keys of one epoch number without handling the keys.
    public func epochKeyDigest(_ epoch: UInt64) -> [UInt8]? {
        guard let key = core.membership.keyring.epochKeys[epoch] else { return nil }
        var bytes = key.secret.copyBytes()
        defer { SecretBytes.wipe(&bytes) }
        return BLAKE2b.hash(bytes, outputByteCount: 16)
    }

    /// The epochs whose keys this device holds.
    public func heldEpochs() -> [UInt64] {
        core.membership.keyring.epochKeys.keys.sorted()
    }

    /// Conversations started from a snapshot.
    public var bootstrappedFromSnapshots: Int { core.documents.bootstrappedFromSnapshots }

    /// Saves every conversation state with unsaved changes (what closing does).
    public func saveStates() throws(ClientError) {
        _ = try core.flushDueBatches(force: true)
        let cipher = core.cipher
        try core.store.write { tx in try core.documents.save(cipher: cipher, tx) }
    }
}
