import CloakProtocol
import Foundation
import Logging

extension CloakClient {
    /// Carries out the sync machine's effects: connections, sends, app notifications, timers.
    func apply(_ effects: [SyncEffect]) {
        for effect in effects {
            switch effect {
            case .connect:
                openConnection()
            case .close:
                closeConnection()
            case .send(let bytes):
                outgoing?.yield(bytes)
            case .surface(let output):
                publish(output)
            case .state(let state):
                connectionState = state
                for continuation in stateObservers.values { continuation.yield(state) }
            }
        }
        rescheduleTimer()
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

    private func connectionOpened(_ connection: any SyncConnection, _ generation: Int) -> Bool {
        guard generation == self.generation else { return false }
        self.connection = connection
        apply(machine.handle(.connected, core: core))
        return true
    }

    private func received(_ bytes: [UInt8], _ generation: Int) {
        guard generation == self.generation else { return }
        apply(machine.handle(.frame(bytes), core: core))
    }

    private func connectionEnded(_ generation: Int) {
        guard generation == self.generation else { return }
        connection = nil
        outgoing = nil
        apply(machine.handle(.disconnected, core: core))
    }

    private func rescheduleTimer() {
        guard let deadline = machine.nextDeadline(core: core) else {
            timer?.cancel()
            timer = nil
            timerDeadline = nil
            return
        }
        if let timerDeadline, timerDeadline == deadline, timer != nil { return }
        timer?.cancel()
        timerDeadline = deadline
        let now = core.now()
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
        apply(machine.handle(.tick, core: core))
    }

    /// Tells observers what changed.
    func publish(_ output: CoreOutput) {
        for event in output.events {
            for continuation in eventObservers.values { continuation.yield(event) }
        }
        guard !output.changed.isEmpty else { return }
        for id in output.changed where id != .library {
            guard let continuations = observers[id], !continuations.isEmpty, let view = core.view(of: id) else { continue }
            for continuation in continuations.values { continuation.yield(view) }
        }
        if !listObservers.isEmpty {
            let summaries = core.summaries()
            for continuation in listObservers.values { continuation.yield(summaries) }
        }
    }

    /// After a local edit: notify observers and let the machine push.
    func afterLocalEdit(_ output: CoreOutput) {
        publish(output)
        apply(machine.handle(.coreOutput(output), core: core))
        if output.pushOutbox { apply(machine.handle(.outboxChanged, core: core)) }
    }
}

extension CloakClient {
    /// Waits until the client is connected and up to date with nothing left to send (or the
    /// timeout passes). Returns whether it got there — for command-line tools and tests.
    public func waitUntilSynced(timeout: Duration = .seconds(30)) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if connectionState == .live, core.pendingOps.isEmpty, (try? core.outbox(limit: 1).isEmpty) == true,
                (try? core.queuedEnvelopes(limit: 1).isEmpty) == true
            {
                return true
            }
            if case .refused = connectionState { return false }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return false
    }
}
