@_spi(Simulation) public import CloakClient
@_spi(Randomness) import CloakProtocol

/// The simulator's device store: every table of the client's store kept in memory, with the
/// same transaction semantics as SQLite under `synchronous=FULL` — a write that returns is
/// durable, a write that throws leaves nothing behind. A simulated device "crashes" by dropping
/// its engine and reopening over the same store: whatever was committed is there, nothing of
/// an unfinished write is. ``failWrite(afterMutations:)`` makes a future write fail part-way,
/// as a full disk or a crash in the middle of a commit would.
///
/// ```swift
/// let store = MemoryClientStore()
/// let engine = try ClientEngine(store: store, secrets: secrets, clock: clock, random: random, …)
/// store.failWrite(afterMutations: 3)   // the next write dies after three row changes
/// ```
@_spi(Simulation)
public final class MemoryClientStore: ClientStore {
    var tables = MemoryTables()
    private var undo: [(inout MemoryTables) -> Void] = []
    private var inWrite = false
    private var failAfter: Int?

    /// An empty store.
    public init() {}

    /// A store holding a copy of another's committed tables (a device restored from a backup).
    public init(copying other: MemoryClientStore) {
        tables = other.tables
    }

    /// Makes the next write transaction fail after `mutations` row changes (its changes are
    /// rolled back). Returns immediately; the failure happens inside that write.
    public func failWrite(afterMutations mutations: Int) {
        failAfter = mutations
    }

    /// Removes a failure planted by ``failWrite(afterMutations:)`` that has not fired.
    public func clearPlantedFailure() {
        failAfter = nil
    }

    /// Bytes of every stored value, for the canary scan of a device's store.
    public func allBytes() -> [[UInt8]] { tables.allBytes() }

    public func read<T>(_ body: (any StoreTransaction) throws -> T) throws(ClientError) -> T {
        do { return try body(MemoryTransaction(store: self, writable: false)) } catch let error as ClientError {
            throw error
        } catch {
            throw .storage("simulated store: \(type(of: error))")
        }
    }

    public func write<T>(_ body: (any StoreTransaction) throws -> T) throws(ClientError) -> T {
        precondition(!inWrite, "nested write transaction")
        inWrite = true
        undo = []
        defer {
            inWrite = false
            undo = []
        }
        do {
            return try body(MemoryTransaction(store: self, writable: true))
        } catch {
            // Roll back, newest change first.
            for step in undo.reversed() { step(&tables) }
            if let error = error as? ClientError { throw error }
            throw .storage("simulated store: \(error)")
        }
    }

    /// Applies one change, remembering how to undo it; fails when a failure was planted.
    func mutate(_ change: (inout MemoryTables) -> (inout MemoryTables) -> Void) throws {
        precondition(inWrite, "a change outside a write transaction")
        if let remaining = failAfter {
            if remaining == 0 {
                failAfter = nil
                throw SimulatedStoreFailure()
            }
            failAfter = remaining - 1
        }
        undo.append(change(&tables))
    }
}

/// The planted failure of ``MemoryClientStore/failWrite(afterMutations:)``.
@_spi(Simulation)
public struct SimulatedStoreFailure: Error, Sendable {}
