import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Synchronization
import Testing

@testable import CloakClient

/// A wall clock tests move by hand.
final class ManualClock: WallClock {
    private let now = Mutex<UInt64>(1_800_000_000_000)
    func nowMillis() -> UInt64 { now.withLock { $0 } }
    func advance(_ millis: UInt64) { now.withLock { $0 += millis } }
}

/// A transport that cannot connect: core-level tests relay change sets by hand.
struct NoTransport: SyncTransport {
    func connect(to url: URL) async throws -> any SyncConnection { throw ClientError.notConnected }
}

let testServer = URL(string: "ws://127.0.0.1:1/v1/sync")!

/// Creates an in-memory client whose randomness is seeded (reproducible keys and nonces).
func makeClient(seed: UInt64, clock: ManualClock = ManualClock(), configuration: ClientConfiguration = .init())
    throws -> CloakClient
{
    try CloakClient.openInMemory(
        server: testServer, transport: NoTransport(), configuration: configuration, clock: clock,
        random: DeterministicRandom(seed: seed))
}

/// An account of `count` devices linked at the core level (no server), each seeded.
func makeAccount(
    devices count: Int, seed: UInt64 = 1, clock: ManualClock = ManualClock(), configuration: ClientConfiguration = .init()
) async throws -> [CloakClient] {
    let first = try makeClient(seed: seed, clock: clock, configuration: configuration)
    try await first._createLocalAccount()
    var clients = [first]
    for index in 1..<count {
        let next = try makeClient(seed: seed &+ UInt64(index) &* 1000, clock: clock, configuration: configuration)
        let (keys, agreement) = await next._publicKeys()
        let (log, envelopes) = try await first._addDevice(signingKey: keys, agreementKey: agreement)
        try await next._join(log: log, envelopes: envelopes)
        clients.append(next)
    }
    // Everyone learns the final log.
    let wires = await first._logWires()
    for client in clients.dropFirst() { _ = try await client._receiveLog(wires) }
    return clients
}

/// The server in these tests: a list of (cursor, wire) every device can read from.
actor Relay {
    private(set) var items: [(cursor: UInt64, wire: [UInt8])] = []

    /// Takes everything in `client`'s outbox (and marks it acknowledged).
    func collect(from client: CloakClient) async throws {
        for wire in try await client._drainOutbox() {
            items.append((UInt64(items.count + 1), wire))
        }
    }

    func append(_ wire: [UInt8]) {
        items.append((UInt64(items.count + 1), wire))
    }
}

extension CloakClient {
    func _createLocalAccount() throws {
        let prepared = try core.prepareAccount()
        try core.adopt(log: prepared.log, keys: [1: prepared.key])
    }

    func _publicKeys() -> (Ed25519PublicKey, X25519PublicKey) {
        (core.identity.signing.publicKey, core.identity.agreement.publicKey)
    }

    func _addDevice(signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey) throws -> (DeviceLog, [KeyEnvelope]) {
        let entry = try core.prepareAddDevice(signingKey: signingKey, agreementKey: agreementKey)
        _ = try core.commitAppended(entry)
        let envelopes = try core.envelopesForAllEpochs(to: DeviceID(signingKey: signingKey), agreementKey)
        return (core.account!.log, envelopes)
    }

    func _join(log: DeviceLog, envelopes: [KeyEnvelope]) throws {
        try core.join(log: log, envelopes: envelopes, recipient: (core.me, core.identity.agreement))
    }

    func _logWires() -> [[UInt8]] { core.account?.log.entries.map(\.wire) ?? [] }

    func _receiveLog(_ wires: [[UInt8]]) throws -> CoreOutput {
        let output = try core.receiveDeviceLog(wires)
        publish(output)
        return output
    }

    func _receiveEnvelopes(_ envelopes: [KeyEnvelope]) throws -> CoreOutput {
        try core.receiveEnvelopes(envelopes)
    }

    func _rejectedCount() throws -> Int {
        try core.rejectedCount()
    }

    func _recordedEvents() throws -> [SecurityEvent] {
        try core.recordedEvents()
    }

    func _drainOutbox() throws -> [[UInt8]] {
        _ = try core.flushDueBatches(force: true)
        let batch = try core.outbox(limit: 100_000)
        try core.acknowledge(batch.map(\.hash))
        return batch.map(\.wire)
    }

    func _receive(_ items: [(cursor: UInt64, wire: [UInt8])]) throws -> CoreOutput {
        let output = try core.receive(items)
        publish(output)
        return output
    }

    func _cursor() throws -> UInt64 { try core.cursor() }

    func _heldCount() -> Int { core.held.count }

    func _heldBytes() -> Int { core.held.bytes }

    func _storeDirectoryCheckpoint() throws {
        try core.store.write { db in try core.saveDocuments(db: db) }
    }
}

extension Relay {
    /// Delivers every item after the client's cursor, in order.
    func deliverAll(to client: CloakClient) async throws -> CoreOutput {
        let cursor = try await client._cursor()
        let pending = items.filter { $0.cursor > cursor }
        return try await client._receive(pending)
    }
}

/// The rendered texts of a conversation's active branch.
func texts(_ client: CloakClient, _ conversation: ConversationID) async -> [String] {
    await client.conversation(conversation)?.messages.map(\.text) ?? []
}
