import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Logging

/// What a core operation asks its driver to do next (fetch, push) and what changed.
struct CoreOutput: Sendable {
    var fetchDeviceLog = false
    var fetchKeyEnvelopes = false
    var gaps: [GapRequest] = []
    var pushOutbox = false
    /// Key envelopes are queued for the server.
    var pushEnvelopes = false
    var changed: Set<ConversationID> = []
    var events: [SecurityEvent] = []
    /// The device learned it was removed from the account.
    var removed = false
    /// The server served a device log shorter than the verified one (this many entries).
    var servedLogLength: Int?
    /// Change sets held for a device-log entry or an epoch key were accepted once it came: the
    /// server may have lost them since they were delivered (a restore), after this
    /// connection's heads scan looked, so the heads are compared again.
    var acceptedHeld = false

    mutating func merge(_ other: CoreOutput) {
        fetchDeviceLog = fetchDeviceLog || other.fetchDeviceLog
        fetchKeyEnvelopes = fetchKeyEnvelopes || other.fetchKeyEnvelopes
        gaps += other.gaps
        pushOutbox = pushOutbox || other.pushOutbox
        pushEnvelopes = pushEnvelopes || other.pushEnvelopes
        changed.formUnion(other.changed)
        events += other.events
        removed = removed || other.removed
        servedLogLength = servedLogLength ?? other.servedLogLength
        acceptedHeld = acceptedHeld || other.acceptedHeld
    }
}

/// What the core is given from outside: nothing in it reads a clock, draws randomness, starts
/// a thread or touches a file except through these (docs/design.md "Two cores, thin adapters").
struct CoreEnvironment {
    let identity: DeviceIdentity
    let cipher: LocalCipher
    let clock: any WallClock
    let random: any RandomSource
    let verifier: any SignatureVerifier
    let configuration: ClientConfiguration
    let logger: Logger
}

/// The synchronous heart of the client. It composes four concerns, each a type that owns its
/// state and its tables — ``Membership`` (device log and keys), ``Ledger`` (chains and
/// admission), ``Documents`` (materialised conversations) and ``Outbox`` (local writes) — and
/// coordinates them for the operations that span several: receiving a change set (admit,
/// decrypt, apply, record), sealing an edit, taking a new device log. No networking, no
/// timers, no async: ``SyncMachine`` and ``ClientEngine`` drive it, and the simulator can run
/// it step by step.
final class ClientCore {
    let store: any ClientStore
    let environment: CoreEnvironment

    var membership = Membership()
    var ledger = Ledger()
    var documents = Documents()
    var outbox: Outbox
    /// Open incidents by id (also in the store).
    var incidents: [String: Incident] = [:]
    /// Change sets known to exist and not held yet.
    var expectations = Expectations()
    /// When each member was last heard of (a change set of it accepted).
    var heard: [DeviceID: UInt64] = [:]
    /// Per chain, the newest authentic change set refused after admission (``cutoffs(of:)``).
    /// Not stored: after a restart, a cut-off catch-up (STALE_CUTOFFS) refuses it again.
    var refusedHeads: [ChainKey: ChainPosition] = [:]
    /// Authors accepted in the current receive batch (their `heard` rows are written with it).
    var heardInBatch: Set<DeviceID> = []
    /// When this device noticed it lacks the key of the account's current epoch (nil: it
    /// has it), for ``reviewCurrentEpochKey(_:)``; in memory: a restart starts the clock again.
    var currentKeyMissingSince: UInt64?
    /// False only in tests that play a hostile assistant whose client skips its own checks
    /// (PROTOCOL.md §29): the receivers' checks are the ones that count (ADV-49).
    var checksOwnAssistantRights = true

    var identity: DeviceIdentity { environment.identity }
    var cipher: LocalCipher { environment.cipher }
    var random: any RandomSource { environment.random }
    var configuration: ClientConfiguration { environment.configuration }
    var logger: Logger { environment.logger }
    var me: DeviceID { identity.id }

    /// The account, once created, linked or recovered.
    var account: AccountID? { membership.account }
    var log: DeviceLog? { membership.log }
    var removedFromAccount: Bool { membership.removed }

    init(store: any ClientStore, environment: CoreEnvironment) throws(ClientError) {
        self.store = store
        self.environment = environment
        outbox = Outbox(replica: Replica(id: environment.identity.id.replicaID))
        try load()
    }

    /// Loads everything from the store: log, keys, chains, documents (replaying change sets
    /// newer than the saved states), pending operations and held change sets.
    private func load() throws(ClientError) {
        let me = me
        let cipher = cipher
        let (incidents, heard, unanswered) = try store.read { tx in
            (try tx.incidents(), try tx.heard(), try tx.unansweredOutbox())
        }
        for incident in incidents { self.incidents[incident.id] = incident }
        self.heard = heard
        outbox.unanswered = Set(unanswered)
        let (membership, ledger, replica, saved, replay, pending) = try store.read { tx in
            let membership = try Membership.load(tx, cipher: cipher)
            let ledger = try Ledger.load(tx)
            let replica = try Outbox.loadReplica(tx, me: me)
            let saved = try tx.savedDocuments()
            // Replay from the oldest point any conversation needs: its saved state's
            // `appliedThrough`, or 0 for a conversation whose state was never saved.
            let replay = try tx.changeSets(in: nil, after: tx.replayStart())
            return (membership, ledger, replica, saved, replay, try tx.pendingOperations())
        }
        self.membership = membership
        self.ledger = ledger
        if let log = membership.log {
            // A member's signed header named log entries this device never got: still stale.
            for (changeSet, reason) in ledger.held.values {
                if case .deviceLog(let index) = reason, log.writerKey(changeSet.header.author) != nil {
                    self.membership.require(logLength: index + 1)
                }
            }
        }
        outbox.replica = replica
        let appliedThrough = try documents.loadSaved(saved, cipher: cipher)
        let now = now()
        for row in replay where row.id > appliedThrough[row.conversation, default: 0] {
            guard let changeSet = try? ChangeSet(wire: row.wire), let (_, ops) = try? decrypt(changeSet) else { continue }
            let report = documents.apply(ops, to: row.conversation, now: now, counted: false, ownReplica: me.replicaID)
            outbox.replica.observe(report.newestTimestamp, physicalMillis: now)
            documents.unsaved[row.conversation, default: 0] += 1
        }
        for (row, conversation, sealed) in pending {
            let bytes = try cipher.open(sealed, context: Outbox.pendingContext(conversation))
            guard let ops = try? OperationBatch.decode(bytes) else { continue }
            _ = documents.apply(ops, to: conversation, now: now, counted: false, ownReplica: me.replicaID)
            outbox.appendPending(ops, row: row, conversation: conversation, now: now)
        }
    }

    func now() -> UInt64 { environment.clock.nowMillis() }

    /// The account's log, or why this device cannot act for it.
    func requireAccount() throws(ClientError) -> DeviceLog {
        guard let log = membership.log else { throw .noAccount }
        guard !membership.removed else { throw .removedFromAccount }
        return log
    }

    /// Verifies the commitment, decrypts and decodes a change set this device already accepted
    /// (or is accepting): returns its body and operations.
    func decrypt(_ changeSet: ChangeSet) throws(ClientError) -> (Cloak_V1_ChangeSetBody, [CRDTOperation]) {
        let header = changeSet.header
        guard let key = membership.changeSetKey(header.conversation, epoch: header.epoch) else {
            throw .missingEpochKey(header.epoch)
        }
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

    // MARK: Security events

    /// Rejected change sets kept for diagnosis; older ones are dropped so a hostile server
    /// cannot grow the store without bound by sending garbage.
    static let rejectedKept = 1_000

    /// Security events kept in the store, newest first; the app's stream has seen every one,
    /// and a hostile server sending garbage must not grow the store without bound (ADV-16).
    static let securityEventsKept = 2_000

    func reject(
        _ wire: [UInt8], hash: ChangeSetHash?, _ event: SecurityEvent, _ tx: any StoreTransaction, _ output: inout CoreOutput
    ) throws {
        try tx.recordRejected(wire, hash: hash, reason: event.kind.rawValue, at: now(), kept: Self.rejectedKept)
        try raise(event, tx, &output)
    }

    func raise(_ event: SecurityEvent, _ tx: any StoreTransaction, _ output: inout CoreOutput) throws {
        try tx.recordEvent(event, at: now(), kept: Self.securityEventsKept)
        output.events.append(event)
        logger.warning(
            "security event", metadata: ["kind": "\(event.kind.rawValue)", "detail": "\(event.detail)",
                                         "seq": "\(event.seq.map(String.init) ?? "-")"])
    }

    /// Records one event in its own transaction (a protocol violation seen by the sync machine).
    func raise(_ event: SecurityEvent) -> CoreOutput {
        var output = CoreOutput()
        do { try store.write { tx in try raise(event, tx, &output) } } catch {
            // Still surfaced to the app even if the store refuses it.
            output.events = [event]
        }
        return output
    }
}

/// The wall clock (milliseconds since the Unix epoch), injected so tests and the simulator
/// control time.
public protocol WallClock: Sendable {
    /// The current time in milliseconds since the Unix epoch.
    func nowMillis() -> UInt64
}

extension UInt64 {
    /// Reads 8 little-endian bytes (nil for any other length).
    init?(littleEndianBytes bytes: [UInt8]) {
        guard bytes.count == 8 else { return nil }
        self = bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
}
