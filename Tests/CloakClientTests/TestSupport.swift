import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Synchronization
import Testing

@_spi(Simulation) @testable import CloakClient

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
        try engine.createAccountLocally()
    }

    func _publicKeys() -> (Ed25519PublicKey, X25519PublicKey) {
        engine.publicKeys()
    }

    func _addDevice(signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey) throws -> (DeviceLog, [KeyEnvelope]) {
        let entry = try engine.core.prepareAddDevice(signingKey: signingKey, agreementKey: agreementKey)
        _ = try engine.core.commitAppended(entry)
        let envelopes = try engine.core.envelopesForAllEpochs(to: DeviceID(signingKey: signingKey), agreementKey)
        return (engine.core.log!, envelopes)
    }

    func _join(log: DeviceLog, envelopes: [KeyEnvelope]) throws {
        try engine.core.join(log: log, envelopes: envelopes)
    }

    func _logWires() -> [[UInt8]] { engine.deviceLogWires() }

    func _receiveLog(_ wires: [[UInt8]]) throws -> CoreOutput {
        let output = try engine.core.receiveDeviceLog(wires)
        engine.surface(output)
        drain()
        return output
    }

    func _receiveEnvelopes(_ envelopes: [KeyEnvelope]) throws -> CoreOutput {
        try engine.core.receiveEnvelopes(envelopes)
    }

    func _rejectedCount() throws -> Int {
        try engine.rejectedCount()
    }

    func _recordedEvents() throws -> [SecurityEvent] {
        try engine.recordedSecurityEvents()
    }

    func _drainOutbox() throws -> [[UInt8]] {
        try engine.takeOutbox()
    }

    func _receive(_ items: [(cursor: UInt64, wire: [UInt8])]) throws -> CoreOutput {
        let output = try engine.core.receive(items)
        engine.surface(output)
        drain()
        return output
    }

    func _cursor() throws -> UInt64 { try engine.core.store.read { tx in try Ledger.cursor(tx) } }

    func _heldCount() -> Int { engine.core.ledger.held.count }

    func _heldBytes() -> Int { engine.core.ledger.held.bytes }

    func _storeDirectoryCheckpoint() throws {
        try engine.saveStates()
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
