import CloakProtocol
import CloakServer
import Logging
import Metrics
import ServiceLifecycle

/// The sync core's background work as a swift-service-lifecycle `Service`: the group
/// committer (one store transaction per batch of staged writes, acknowledgements after it),
/// the timeout ticker, and graceful shutdown — stop taking requests, finish every staged
/// commit, then close every connection with SHUTTING_DOWN (WebSocket 1001).
struct SyncService: Service {
    let registry: SyncRegistry
    let table: ConnectionTable
    let store: any ServerStore
    let tickInterval: Duration
    let logger: Logger

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await commitLoop() }
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
            group.cancelAll()
            logger.info("sync service stopped")
        }
    }

    /// Commits whatever is staged, one batch at a time, until the request stream ends.
    private func commitLoop() async {
        for await _ in table.commitRequests {
            while let (id, batch) = registry.takeBatch() {
                let start = ContinuousClock.now
                do {
                    try await store.commit(batch)
                    registry.metrics.commitLatency.record(ContinuousClock.now - start)
                    registry.finishBatch(id, error: nil)
                } catch {
                    registry.finishBatch(id, error: error)
                }
            }
        }
    }

    private func tickLoop() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: tickInterval) } catch { return }
            registry.tick(nowMs: WallClock.nowMs)
        }
    }
}
