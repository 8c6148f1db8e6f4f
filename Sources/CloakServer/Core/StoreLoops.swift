public import Logging
import Metrics

/// The driver's side of the work the sync core hands out, over an async store: the group
/// committer, fanout reads and (with a shared store) the listener for other processes'
/// commits. The WebSocket adapter and the tests run the same loops.
///
/// ```swift
/// group.addTask { await StoreLoops.commits(registry: registry, store: store, wakeups: commitRequests) }
/// group.addTask { await StoreLoops.fanoutReads(registry: registry, store: store, wakeups: fanoutRequests) }
/// if let notifier = store as? any CommitNotifier {
///     group.addTask { await StoreLoops.remoteCommits(registry: registry, notifier: notifier, logger: logger) }
/// }
/// ```
public enum StoreLoops {
    /// Commits whatever is staged, one batch at a time, each time `wakeups` yields, until it ends.
    /// `nowMs` (wall-clock ms; the default 0 records nothing) stamps each batch as its accounts'
    /// last write (``WriteBatch/committedAtMs``).
    public static func commits(
        registry: SyncRegistry, store: any ServerStore, wakeups: AsyncStream<Void>,
        nowMs: @Sendable () -> UInt64 = { 0 }
    ) async {
        for await _ in wakeups {
            while let (id, taken) = registry.takeBatch() {
                var batch = taken
                batch.committedAtMs = nowMs()
                let start = ContinuousClock.now
                do {
                    let conflicts = try await store.commit(batch)
                    registry.metrics.commitLatency.record(ContinuousClock.now - start)
                    registry.finishBatch(id, error: nil, conflicts: conflicts)
                } catch {
                    registry.finishBatch(id, error: error)
                }
            }
        }
    }

    /// Runs the fanout reads the registry asks for each time `wakeups` yields, until it ends.
    /// After a failed read it waits a little before the retry the registry asks for.
    public static func fanoutReads(registry: SyncRegistry, store: any ServerStore, wakeups: AsyncStream<Void>) async {
        for await _ in wakeups {
            var reads = registry.takeFanoutReads()
            while !reads.isEmpty {
                var failed = false
                for read in reads {
                    do {
                        var answers: [StoreReadResult] = []
                        for storeRead in read.reads { answers.append(try await store.perform(storeRead)) }
                        registry.finishFanoutRead(read, results: .success(answers))
                    } catch {
                        failed = true
                        registry.finishFanoutRead(read, results: .failure(error))
                    }
                }
                if failed { try? await Task.sleep(for: .milliseconds(200)) }
                reads = registry.takeFanoutReads()
            }
        }
    }

    /// Feeds other processes' commit announcements to the registry until the task is
    /// cancelled. When the listening connection is lost it listens again after `retryDelay`,
    /// and once it listens again every cached account is treated as changed (announcements
    /// may have been missed meanwhile).
    /// After each failure in a row the delay doubles, up to 30 s; the first failure of a run is
    /// logged at warning level, the rest at debug.
    public static func remoteCommits(
        registry: SyncRegistry, notifier: any CommitNotifier, logger: Logger, retryDelay: Duration = .seconds(1)
    ) async {
        var delay = retryDelay
        var failing = false
        while !Task.isCancelled {
            do {
                try await notifier.listenForCommits(
                    onListening: { registry.remoteCommitsMayBeMissed() }, onCommit: { registry.remoteCommit($0, version: $1) })
                delay = retryDelay
                failing = false
            } catch {
                if Task.isCancelled { return }
                if failing {
                    logger.debug("listening for other server processes' commits failed again", metadata: ["error": "\(error)"])
                } else {
                    logger.warning(
                        "Listening for other server processes' commits failed; retrying with backoff up to 30 s.",
                        metadata: ["error": "\(error)"])
                }
                failing = true
            }
            try? await Task.sleep(for: delay)
            if failing { delay = min(delay * 2, max(retryDelay, .seconds(30))) }
        }
    }
}
