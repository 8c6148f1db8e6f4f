import Dispatch
import GRDB
import Synchronization

/// Runs SQLite's WAL checkpoints on a connection and thread of their own, so the group commit
/// only appends to the WAL and fsyncs it. SQLite's automatic checkpoint would run inside the
/// commit that crosses its threshold: with batches of thousands of change sets that is nearly
/// every commit, and every page would be written twice while the acks wait.
///
/// A passive checkpoint never blocks the writer or readers; once it has copied every frame the
/// writer's next transaction starts the WAL over. If the checkpointer lags (a reader pinning an
/// old snapshot, a slow disk), SQLite's own checkpoint at ``backstopPages`` bounds the WAL.
final class WALCheckpointer: Sendable {
    /// SQLite's automatic-checkpoint threshold left on the writer as the backstop (64 MiB of
    /// 4 KiB pages).
    static let backstopPages = 16_384
    /// Committed bytes after which a background checkpoint starts.
    static let triggerBytes = 4 << 20

    private struct State {
        var pendingBytes = 0
        var running = false
        var closed = false
    }

    private let connection: DatabaseQueue
    private let queue = DispatchQueue(label: "cloak.sqlite.checkpoint")
    private let state = Mutex(State())

    init(path: String, configuration: Configuration) throws {
        connection = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Notes a durable commit of about `bytes`; starts a checkpoint when enough accumulated and
    /// none is running.
    func committed(bytes: Int) {
        let start = state.withLock { s in
            s.pendingBytes += bytes
            guard !s.running, !s.closed, s.pendingBytes >= Self.triggerBytes else { return false }
            s.running = true
            s.pendingBytes = 0
            return true
        }
        guard start else { return }
        queue.async { [self] in
            // `close()` waits for a block already running here; one that starts after it sees
            // `closed` and leaves the connection alone.
            if !state.withLock({ $0.closed }) {
                // A failed passive checkpoint leaves the frames in the WAL, where readers still
                // find them; the next one (or SQLite's backstop) copies them.
                _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            }
            state.withLock { $0.running = false }
        }
    }

    /// Waits for a running checkpoint and closes the connection.
    func close() {
        state.withLock { $0.closed = true }
        queue.sync {}
        try? connection.close()
    }
}

extension WriteBatch {
    /// Roughly the bytes a commit appends to the WAL (payloads; keys and pages add a little).
    var approximateBytes: Int {
        changeSets.reduce(0) { $0 + $1.bytes.count + 128 } + envelopes.reduce(0) { $0 + $1.bytes.count }
            + snapshots.reduce(0) { $0 + $1.bytes.count } + logEntries.count * 512 + 256
    }
}
