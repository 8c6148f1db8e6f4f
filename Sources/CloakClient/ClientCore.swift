import CloakCRDT
import CloakCrypto
import CloakProtocol
import Foundation
import GRDB
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

    mutating func merge(_ other: CoreOutput) {
        fetchDeviceLog = fetchDeviceLog || other.fetchDeviceLog
        fetchKeyEnvelopes = fetchKeyEnvelopes || other.fetchKeyEnvelopes
        gaps += other.gaps
        pushOutbox = pushOutbox || other.pushOutbox
        pushEnvelopes = pushEnvelopes || other.pushEnvelopes
        changed.formUnion(other.changed)
        events += other.events
        removed = removed || other.removed
    }
}

/// A request to re-fetch part of an author's chain (a gap).
struct GapRequest: Hashable, Sendable {
    let conversation: ConversationID
    let author: DeviceID
    let fromSeq: UInt64
    let toSeq: UInt64
}

/// The account this device belongs to, once created, linked or recovered.
struct AccountState: Sendable {
    var log: DeviceLog
    var keyring = Keyring()
    var account: AccountID { log.account }
}

/// The synchronous heart of the client: keys, device log, sealing and verifying change sets,
/// CRDT documents and the local store. No networking, no timers, no async: time and
/// randomness are injected, so the simulator can drive it deterministically (DESIGN.md
/// "Two cores, thin adapters"). ``CloakClient`` (an actor) and the sync machine drive it.
final class ClientCore {
    let store: ClientStore
    let cipher: LocalCipher
    let identity: DeviceIdentity
    let clock: any WallClock
    let random: any RandomSource
    let logger: Logger
    let configuration: ClientConfiguration

    var account: AccountState?
    var replica: Replica
    var documents = DocumentSet()
    var chains: [ChainKey: ChainPosition] = [:]
    /// Chains other devices have claimed a head of (rows in `claimed_heads`, never deleted), so
    /// the fork check skips its query for chains nobody claimed anything about. A row rolled
    /// back with a failed transaction leaves an extra entry: one query too many, never too few.
    var claimedChains: Set<ChainKey> = []
    /// Chains whose new position accepted change sets have not written yet (see saveChains).
    var unsavedChains: Set<ChainKey> = []
    /// Change sets waiting for a log entry, a key or a gap, by hash.
    var held = HeldSet()
    /// Local operations not yet sealed, per conversation (streaming batches), with their row ids.
    var pendingOps: [ConversationID: (ops: [CRDTOperation], rows: [Int64], since: UInt64)] = [:]
    /// Accepted change sets per conversation since its state was last saved.
    var unsavedChanges: [ConversationID: Int] = [:]
    /// Change sets per conversation since the last snapshot this device knows of.
    var changesSinceSnapshot: [ConversationID: Int] = [:]
    var removedFromAccount = false
    /// The snapshot sent to the server and not yet confirmed.
    var pendingSnapshot: Snapshot?
    /// Conversations to rebuild from their change sets once the current write commits.
    var rebuildAfterCommit: Set<ConversationID> = []
    /// Own change sets the server refused with STALE_DEVICE_LOG, to re-seal once the newest
    /// epoch key is here. Only these are re-sealed: one the server stored before the removal
    /// (its ack lost) is acknowledged as a duplicate instead, and re-sealing it would fork.
    /// Kept in memory: after a restart a resend is simply refused again.
    var staleRefused: Set<ChangeSetHash> = []
    /// The change set of a received batch being admitted now, if a ``SignatureBatch`` helper
    /// already verified its signature with its author's key (held change sets retried in
    /// between do not match it and are verified by admission).
    var preverified: SignatureBatch.Verified?
    /// Conversations this device started from a snapshot (bootstrap), for diagnostics.
    var bootstrappedFromSnapshots = 0

    var me: DeviceID { identity.id }

    init(
        store: ClientStore, storageKey: SymmetricKey, identity: DeviceIdentity, clock: any WallClock,
        random: any RandomSource, configuration: ClientConfiguration, logger: Logger
    ) throws(ClientError) {
        self.store = store
        self.cipher = LocalCipher(key: storageKey, random: random)
        self.identity = identity
        self.clock = clock
        self.random = random
        self.configuration = configuration
        self.logger = logger
        replica = Replica(id: identity.id.replicaID)
        try load()
    }

    /// Loads everything from the store: log, keys, chains, documents (replaying change sets
    /// newer than the saved states), pending operations and held change sets.
    func load() throws(ClientError) {
        let loaded = try store.read { db in try StoredState.load(db) }
        if let replicaBytes = loaded.replica {
            // A corrupt replica would restart operation counters at 0 and reuse ids: refuse.
            do { replica = try Replica(decoding: replicaBytes) } catch { throw .storage("stored replica state is corrupt") }
        }
        removedFromAccount = loaded.removed
        guard !loaded.logEntries.isEmpty else { return }
        let entries: [DeviceLogEntry]
        do { entries = try loaded.logEntries.map { bytes throws(ProtocolError) in try DeviceLogEntry(wire: bytes) } } catch {
            throw .storage("stored device log is corrupt")
        }
        var state: AccountState
        do { state = AccountState(log: try DeviceLog(verifying: entries)) } catch {
            throw .storage("stored device log does not verify")
        }
        for (epoch, sealed) in loaded.epochKeys {
            var raw = try cipher.open(sealed, context: Self.epochContext(epoch))
            defer { SecretBytes.wipe(&raw) }
            guard let key = try? SymmetricKey(bytes: raw) else { throw .storage("stored epoch key is corrupt") }
            state.keyring.add(key, epoch: epoch)
        }
        account = state
        chains = loaded.chains
        claimedChains = loaded.claimedChains
        try loadDocuments(loaded)
        for (wire, reason) in loaded.held {
            guard let changeSet = try? ChangeSet(wire: wire) else { continue }
            held[changeSet.hash] = (changeSet, reason)
        }
    }

    static func epochContext(_ epoch: UInt64) -> [UInt8] { Array("epoch-key".utf8) + epoch.littleEndianBytes }
    static func documentContext(_ conversation: ConversationID) -> [UInt8] {
        Array("document".utf8) + conversation.bytes
    }
    static func pendingContext(_ conversation: ConversationID) -> [UInt8] {
        Array("pending".utf8) + conversation.bytes
    }

    func now() -> UInt64 { clock.nowMillis() }

    func requireAccount() throws(ClientError) -> AccountState {
        guard let account else { throw .noAccount }
        guard !removedFromAccount else { throw .removedFromAccount }
        return account
    }
}

/// The wall clock (milliseconds since the Unix epoch), injected so tests and the simulator
/// control time.
public protocol WallClock: Sendable {
    /// The current time in milliseconds since the Unix epoch.
    func nowMillis() -> UInt64
}
