import CloakProtocol
import CloakServer
import Logging
import Metrics
import ServiceLifecycle

/// The sync core's background work as a swift-service-lifecycle `Service`: the group
/// committer (one store transaction per batch of staged writes, acknowledgements after it),
/// fanout reads and, on a shared store, the listener for other processes' commits
/// (``StoreLoops``), the timeout ticker, and graceful shutdown — stop taking requests, finish every staged
/// commit, then close every connection with SHUTTING_DOWN (WebSocket 1001).
struct SyncService: Service {
    let registry: SyncRegistry
    let table: ConnectionTable
    let store: any ServerStore
    let tickInterval: Duration
    let logger: Logger

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await StoreLoops.commits(
                    registry: registry, store: store, wakeups: table.commitRequests, nowMs: { WallClock.nowMs })
            }
            group.addTask { await StoreLoops.fanoutReads(registry: registry, store: store, wakeups: table.fanoutRequests) }
            if registry.configuration.sharedStore, let notifier = store as? any CommitNotifier {
                group.addTask { await StoreLoops.remoteCommits(registry: registry, notifier: notifier, logger: logger) }
            }
            group.addTask { await tickLoop() }
            // Returns when graceful shutdown starts (or throws when the group is cancelled).
            try? await gracefulShutdown()
            logger.info("shutting down: finishing staged commits")
            registry.beginShutdown()
            while registry.hasUncommittedWrites {
                table.commitNeeded()
                try? await Task.sleep(for: .milliseconds(5))
                if Task.isCancelled { break }
            }
            registry.closeAll(with: .shuttingDown)
            // The HTTP listener stops after this service returns and would close what is still
            // open with 1000: wait (bounded by the close grace) until every connection has
            // finished its own close handshake with 1001.
            let deadline = ContinuousClock.now + .seconds(6)
            while table.openCount > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(5))
            }
            table.finishCommits()
            table.finishFanoutReads()
            group.cancelAll()
            logger.info("sync service stopped")
        }
    }

    private func tickLoop() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: tickInterval) } catch { return }
            registry.tick(nowMs: WallClock.nowMs)
        }
    }
}
