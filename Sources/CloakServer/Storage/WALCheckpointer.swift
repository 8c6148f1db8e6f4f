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
/// old snapshot, a slow disk), SQLite's own checkpoint at ``backstopBytes`` bounds the WAL.
final class WALCheckpointer: Sendable {
    /// The WAL size at which SQLite's automatic checkpoint, left on the writer as the backstop,
    /// runs (set in pages of the file's own size).
    static let backstopBytes = 64 << 20

    private struct State {
        var lastStart: ContinuousClock.Instant?
        var running = false
        /// A commit came while a checkpoint ran or too soon after one: its frames wait for the
        /// follow-up that the running checkpoint schedules when it ends.
        var skipped = false
        var closed = false
    }

    private let connection: DatabaseQueue
    private let queue = DispatchQueue(label: "cloak.sqlite.checkpoint")
    private let state = Mutex(State())
    /// Least time between the starts of two checkpoints. Paced by time rather than by bytes:
    /// what a commit adds to the WAL is mostly pages of indexes it touched, which the rows'
    /// sizes do not tell (a one-row commit still rewrites several whole pages).
    let interval: Duration

    init(path: String, configuration: Configuration, interval: Duration) throws {
        connection = try DatabaseQueue(path: path, configuration: configuration)
        self.interval = interval
    }

    /// Notes a durable commit; starts a checkpoint unless one is running or started less than
    /// ``interval`` ago, in which case one more runs an interval after the current one ends.
    /// Each copies every frame committed before it began, so the WAL holds about one
    /// interval's commits (plus one checkpoint's duration) between resets.
    func committed() {
        start(paced: true)
    }

    private func start(paced: Bool) {
        let now = ContinuousClock.now
        let begin = state.withLock { s in
            guard !s.closed else { return false }
            if s.running || (paced && s.lastStart.map { now - $0 < interval } == true) {
                s.skipped = true
                // Nothing running would schedule the follow-up: the last one ended too recently.
                return false
            }
            s.running = true
            s.skipped = false
            s.lastStart = now
            return true
        }
        if !begin {
            scheduleFollowUpIfIdle()
            return
        }
        queue.async { [self] in
            // `close()` waits for a block already running here; one that starts after it sees
            // `closed` and leaves the connection alone.
            if !state.withLock({ $0.closed }) {
                // A failed passive checkpoint leaves the frames in the WAL, where readers still
                // find them; the next one (or SQLite's backstop) copies them.
                _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            }
            state.withLock { $0.running = false }
            scheduleFollowUpIfIdle()
        }
    }

    /// Runs one more checkpoint an interval from now if commits were skipped and nothing is
    /// running or already scheduled to pick them up.
    private func scheduleFollowUpIfIdle() {
        let schedule = state.withLock { s in
            guard s.skipped, !s.running, !s.closed else { return false }
            s.skipped = false
            s.running = true  // held by the scheduled follow-up until it starts
            return true
        }
        guard schedule else { return }
        let (seconds, attoseconds) = interval.components
        let delay = DispatchTimeInterval.nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        queue.asyncAfter(deadline: .now() + delay) { [self] in
            state.withLock { $0.running = false }
            start(paced: false)
        }
    }

    /// Waits for a running checkpoint (suspending, not blocking a thread of the caller's
    /// pool) and closes the connection.
    func close() async {
        state.withLock { $0.closed = true }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in queue.async { done.resume() } }
        try? connection.close()
    }
}
