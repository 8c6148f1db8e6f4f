public import CloakCrypto
public import CloakProtocol

/// Hooks for the simulator, the tests and the benchmarks (`@_spi(Simulation) import
/// CloakClient`): they move change sets between devices without a server, as a deterministic
/// network (or a hostile one) would. Not part of the app-facing API. Each forwards to the
/// ``ClientEngine`` hook of the same name.
@_spi(Simulation)
extension CloakClient {
    /// This device's public keys (what a pairing payload carries).
    public func publicKeys() -> (signing: Ed25519PublicKey, agreement: X25519PublicKey) { engine.publicKeys() }

    /// Creates an account locally without telling any server.
    public func createAccountLocally() throws(ClientError) { try engine.createAccountLocally() }

    /// Adds a device locally (no server).
    public func addDeviceLocally(signing: Ed25519PublicKey, agreement: X25519PublicKey) throws(ClientError)
        -> (log: [[UInt8]], envelopes: [KeyEnvelope])
    {
        try engine.addDeviceLocally(signing: signing, agreement: agreement)
    }

    /// Joins an account from a device log and envelopes (no server, no pairing mailbox).
    public func joinLocally(log wires: [[UInt8]], envelopes: [KeyEnvelope]) throws(ClientError) {
        try engine.joinLocally(log: wires, envelopes: envelopes)
    }

    /// Seals pending streamed text and returns every unacknowledged change set, marking them
    /// acknowledged.
    public func takeOutbox() throws(ClientError) -> [[UInt8]] { try engine.takeOutbox() }

    /// Delivers change sets as a server's `Deliver` frame would; returns the security events.
    @discardableResult
    public func deliver(_ items: [(cursor: UInt64, wire: [UInt8])]) throws(ClientError) -> [SecurityEvent] {
        defer { drain() }
        return try engine.deliver(items)
    }

    /// Delivers a device log as a server's `DeviceLogEntries` reply would.
    @discardableResult
    public func deliverDeviceLog(_ wires: [[UInt8]]) throws(ClientError) -> [SecurityEvent] {
        defer { drain() }
        return try engine.deliverDeviceLog(wires)
    }

    /// Delivers key envelopes as a server's `KeyEnvelopes` reply would.
    @discardableResult
    public func deliverEnvelopes(_ envelopes: [KeyEnvelope]) throws(ClientError) -> [SecurityEvent] {
        defer { drain() }
        return try engine.deliverEnvelopes(envelopes)
    }

    /// The device log this device has verified, serialised.
    public func deviceLogWires() -> [[UInt8]] { engine.deviceLogWires() }

    /// Change sets held for a missing log entry, key or gap.
    public var heldCount: Int { engine.heldCount }

    /// A snapshot of `conversation` now, as the sync machine would upload it.
    public func makeSnapshot(of conversation: ConversationID) throws(ClientError) -> Snapshot? {
        try engine.makeSnapshot(of: conversation)
    }

    /// Delivers snapshots as a server's `SnapshotList` reply would (bootstrap).
    @discardableResult
    public func deliverSnapshots(_ snapshots: [Snapshot]) throws(ClientError) -> [SecurityEvent] {
        defer { drain() }
        return try engine.deliverSnapshots(snapshots)
    }

    /// Runs `body` with the engine, on the actor (tests that inspect the core).
    public func withEngine<T: Sendable>(_ body: (ClientEngine) throws -> T) rethrows -> T {
        defer { drain() }
        return try body(engine)
    }
}
