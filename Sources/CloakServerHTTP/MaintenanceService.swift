import CloakProtocol
import CloakServer
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The server's periodic work beside the sync core, as a service: the operator's blocks and
/// erasures read from the store (their connections closed), the store's totals (metrics and
/// the total-storage cap), scheduled compaction, certificate reloads on SIGHUP, and the
/// database's health — one log line when it stops answering and one when it answers again,
/// with probes backing off from 1 s to 30 s meanwhile.
struct MaintenanceService: Service {
    let registry: SyncRegistry
    let store: any ServerStore
    let gauges: ServerGauges
    let configuration: HTTPServerConfiguration
    let certificates: CertificateReloader?
    let logger: Logger
    let health = StoreHealth()

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await every(configuration.accessSweepInterval) { try await sweepAccess() } }
            group.addTask { await healthLoop() }
            if let compactEveryMs = configuration.compactEveryMs {
                group.addTask { await every(.milliseconds(Int64(clamping: compactEveryMs))) { try await compact() } }
            }
            // Trapped even without TLS: SIGHUP's default would end the process.
            group.addTask { await reloadOnHangUp(certificates) }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// Runs `work` every `interval` until cancelled; a store failure is reported to the health
    /// tracker (which logs it once) rather than each time.
    private func every(_ interval: Duration, _ work: () async throws -> Void) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            do {
                try await work()
            } catch let error as StoreError {
                health.failed(error, logger: logger, gauges: gauges)
            } catch {
                return
            }
        }
    }

    private func sweepAccess() async throws {
        let cached = registry.cachedAccounts
        var start = 0
        while start < cached.count {
            let chunk = Array(cached[start..<min(start + 500, cached.count)])
            registry.applyAccessStates(try await store.accessStates(chunk), checked: chunk)
            start += 500
        }
    }

    private func compact() async throws {
        _ = try await Compactor.run(store: store, nowMs: WallClock.nowMs, logger: logger)
        gauges.compactions.increment()
        try await refreshUsage()
    }

    private func refreshUsage() async throws {
        let usage = try await store.usage()
        registry.setTotalStoredBytes(usage.storedBytes)
        gauges.accounts.set(Int64(usage.accounts))
        gauges.storedBytes.set(Double(usage.storedBytes))
        gauges.databaseBytes.set(Double(usage.databaseBytes))
    }

    /// Reads the totals now and every ``HTTPServerConfiguration/usageInterval`` while the store
    /// answers; while it does not, probes it with exponential backoff (1 s doubling to 30 s).
    private func healthLoop() async {
        var delay = Duration.zero
        while !Task.isCancelled {
            if delay > .zero {
                do { try await Task.sleep(for: delay) } catch { return }
            }
            do {
                try await store.ping(within: .seconds(5))
                try await refreshUsage()
                health.succeeded(logger: logger, gauges: gauges)
                delay = configuration.usageInterval
            } catch let error as StoreError {
                health.failed(error, logger: logger, gauges: gauges)
                delay = health.nextProbeDelay()
            } catch {
                return
            }
        }
    }

    private func reloadOnHangUp(_ certificates: CertificateReloader?) async {
        for await _ in await UnixSignalsSequence(trapping: .sighup) {
            guard let certificates else {
                logger.notice("SIGHUP: nothing to reload (the server runs without TLS)")
                continue
            }
            do {
                try certificates.reload()
                logger.notice("reloaded the TLS certificate", metadata: ["certificate": "\(certificates.certificatePath)"])
            } catch {
                logger.error("\(error.description) The previous certificate stays in use.")
            }
        }
    }
}

/// Whether the database answers, so an outage is logged once when it starts and once when it
/// ends (not once per request), with the probe delay backing off meanwhile.
final class StoreHealth: Sendable {
    private struct State {
        var down = false
        var delay: Duration = .seconds(1)
        var since = ContinuousClock.now
    }

    private let state = Mutex(State())

    func failed(_ error: StoreError, logger: Logger, gauges: ServerGauges) {
        let first = state.withLock { s in
            defer { s.down = true }
            if !s.down { (s.since, s.delay) = (ContinuousClock.now, .seconds(1)) }
            return !s.down
        }
        gauges.storeUp.set(Int64(0))
        if first {
            logger.error(
                "\(error.description) Clients get INTERNAL and retry; checking the database again, backing off to every 30 s.")
        } else {
            logger.debug("the database still does not answer", metadata: ["error": "\(error)"])
        }
    }

    func succeeded(logger: Logger, gauges: ServerGauges) {
        let outage = state.withLock { s -> Duration? in
            defer { s.down = false }
            return s.down ? ContinuousClock.now - s.since : nil
        }
        gauges.storeUp.set(Int64(1))
        if let outage {
            logger.notice("The database answers again after \(outage.components.seconds) s.")
        }
    }

    /// 1 s, 2 s, 4 s … 30 s.
    func nextProbeDelay() -> Duration {
        state.withLock { s in
            defer { s.delay = min(s.delay * 2, .seconds(30)) }
            return s.delay
        }
    }
}
