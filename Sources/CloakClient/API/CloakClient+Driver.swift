import CloakProtocol
import Foundation
import Logging

extension CloakClient {
    /// Carries out the engine's effects: connections, sends, app notifications, flow results,
    /// then sleeps until its next deadline.
    func drain() {
        for effect in engine.takeEffects() {
            switch effect {
            case .connect:
                openConnection()
            case .close:
                closeConnection()
            case .send(let bytes):
                outgoing?.yield(bytes)
            case .changed(let conversations):
                publish(conversations)
            case .events(let events):
                for event in events {
                    for continuation in eventObservers.values { continuation.yield(event) }
                }
            case .state(let state):
                connectionState = state
                for continuation in stateObservers.values { continuation.yield(state) }
            case .flowFinished(let id, let result):
                if let waiter = flowWaiters.removeValue(forKey: id) {
                    waiter.resume(returning: result)
                } else {
                    finishedFlows[id] = result
                }
            }
        }
        resolveSyncWaiters()
        publishStatus()
        rescheduleTimer()
    }

    /// Tells status observers when the status changed (computed only while someone listens).
    private func publishStatus() {
        guard !statusObservers.isEmpty else { return }
        let status = engine.syncStatus
        guard status != lastStatus else { return }
        lastStatus = status
        for continuation in statusObservers.values { continuation.yield(status) }
    }

    /// Runs a lifecycle flow the engine started and waits for its result.
    func run(_ start: () throws(ClientError) -> FlowID) async throws(ClientError) -> FlowOutcome {
        let id = try start()
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<FlowOutcome, ClientError>, Never>) in
            if let finished = finishedFlows.removeValue(forKey: id) {
                continuation.resume(returning: finished)
                return
            }
            flowWaiters[id] = continuation
            drain()
        }
        return try result.get()
    }

    private func openConnection() {
        closeConnection()
        let generation = self.generation
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        outgoing = continuation
        let transport = self.transport
        let url = server
        Task.detached {
            let connection: any SyncConnection
            do { connection = try await transport.connect(to: url) } catch {
                await self.connectionFailed(error, generation)
                await self.connectionEnded(generation)
                return
            }
            guard await self.connectionOpened(connection, generation) else {
                await connection.close()
                return
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await bytes in stream {
                        do { try await connection.send(bytes) } catch { break }
                    }
                    await connection.close()
                }
                group.addTask {
                    for await bytes in connection.inbound { await self.received(bytes, generation) }
                    continuation.finish()
                }
                await group.waitForAll()
            }
            await self.connectionEnded(generation)
        }
    }

    private func closeConnection() {
        // Anything still arriving from the old connection (or a connect still in flight) is
        // ignored from now on.
        generation += 1
        outgoing?.finish()
        outgoing = nil
        if let connection {
            Task { await connection.close() }
        }
        connection = nil
    }

    private func connectionFailed(_ error: any Error, _ generation: Int) {
        guard generation == self.generation else { return }
        lastConnectionFailure = error
    }

    private func connectionOpened(_ connection: any SyncConnection, _ generation: Int) -> Bool {
        guard generation == self.generation else { return false }
        self.connection = connection
        lastConnectionFailure = nil
        engine.handle(.connected)
        drain()
        return true
    }

    private func received(_ bytes: [UInt8], _ generation: Int) {
        guard generation == self.generation else { return }
        engine.handle(.frame(bytes))
        drain()
    }

    private func connectionEnded(_ generation: Int) {
        guard generation == self.generation else { return }
        connection = nil
        outgoing = nil
        engine.handle(.disconnected)
        drain()
    }

    private func rescheduleTimer() {
        guard let deadline = engine.nextDeadline else {
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            return
        }
        if let timerDeadline, timerDeadline == deadline, timer != nil { return }
        timer?.cancel()
        timerDeadline = deadline
        let now = engine.core.now()
        let delay = deadline > now ? deadline - now : 0
        timer = Task {
            try? await Task.sleep(for: .milliseconds(Int64(delay)))
            guard !Task.isCancelled else { return }
            self.fire()
        }
    }

    private func fire() {
        timer = nil
        timerDeadline = nil
        engine.handle(.tick)
        drain()
    }

    /// Tells observers what changed.
    func publish(_ changed: Set<ConversationID>) {
        guard !changed.isEmpty else { return }
        for id in changed where id != .library {
            guard let continuations = observers[id], !continuations.isEmpty, let view = engine.conversation(id) else { continue }
            for continuation in continuations.values { continuation.yield(view) }
        }
        if !listObservers.isEmpty {
            let summaries = engine.conversations()
            for continuation in listObservers.values { continuation.yield(summaries) }
        }
        for continuation in changeObservers.values { continuation.yield(changed) }
    }

    /// Live, nothing to send, and nothing known to be missing or wrong.
    var isSyncedNow: Bool { engine.isSynced }

    private func resolveSyncWaiters() {
        guard !syncWaiters.isEmpty else { return }
        let refused = if case .refused = connectionState { true } else { false }
        guard isSyncedNow || refused else { return }
        for waiter in syncWaiters.values { waiter.resume(returning: !refused) }
        syncWaiters = [:]
    }
}

extension CloakClient {
    /// Waits until the client is connected and up to date with nothing left to send (or the
    /// timeout passes). Returns whether it got there — for command-line tools and tests.
    public func waitUntilSynced(timeout: Duration = .seconds(30)) async -> Bool {
        if isSyncedNow { return true }
        if case .refused = connectionState { return false }
        let id = nextObserverID
        nextObserverID += 1
        let watchdog = Task {
            try? await Task.sleep(for: timeout)
            self.syncWaitTimedOut(id)
        }
        defer { watchdog.cancel() }
        return await withCheckedContinuation { continuation in
            syncWaiters[id] = continuation
        }
    }

    private func syncWaitTimedOut(_ id: Int) {
        syncWaiters.removeValue(forKey: id)?.resume(returning: false)
    }
}
