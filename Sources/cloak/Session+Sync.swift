import CloakClient
import Foundation

/// How a wait for the server ended.
enum SyncOutcome {
    /// Live, nothing waiting to be sent, nothing known to be missing, no open incident.
    case synced
    /// This device verified its own removal from the account.
    case removed
    /// The server refuses this device for good (`ConnectionState.refused`).
    case refused(String)
    /// Not synced when the wait ended; the status then.
    case gaveUp(SyncStatus)
}

extension Session {
    /// Starts syncing and waits until the device is up to date, the server refuses it, or the
    /// time is up, printing progress every two seconds after the first two.
    func sync(for duration: Duration) async -> SyncOutcome {
        await client.startSync()
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started + duration
        var nextReport = started + .seconds(2)
        var unchanged: (status: SyncStatus, since: ContinuousClock.Instant)?
        while true {
            if await client.waitUntilSynced(timeout: .milliseconds(200)) { return .synced }
            if await client.isRemovedFromAccount { return .removed }
            if case .refused(let reason) = await client.connectionState { return .refused(reason) }
            let status = await client.syncStatus()
            let now = clock.now
            // Live, with nothing of ours waiting and something known to be missing or wrong
            // that does not change: waiting longer will not bring it.
            let stuck = status.connection == .live && status.unacknowledgedEdits == 0
                && (!status.incidents.isEmpty || status.members.contains { $0.knownMissing > 0 })
            if stuck, let previous = unchanged, previous.status == status {
                if now - previous.since >= .seconds(3) { return .gaveUp(status) }
            } else {
                unchanged = stuck ? (status, now) : nil
            }
            if now >= deadline { return .gaveUp(status) }
            if now >= nextReport {
                note(await progress(status, elapsed: now - started))
                nextReport = now + .seconds(2)
            }
        }
    }

    /// Waits for the server as ``sync(for:)`` does, and ends the command unless the device got
    /// up to date. Commands that cannot do without the server use it.
    func requireSync(for duration: Duration) async {
        switch await sync(for: duration) {
        case .synced: return
        case let outcome: await fail(await problem(outcome))
        }
    }

    /// Why a wait did not end up to date, as the failure to report.
    func problem(_ outcome: SyncOutcome) async -> CLIError {
        switch outcome {
        case .synced:
            return .failed("synced")
        case .removed:
            return .security(CLIError.removed(await context))
        case .refused(let reason):
            return .server("the server at \(options.server) refuses this device: \(reason)")
        case .gaveUp(let status):
            return await explain(status)
        }
    }

    private func explain(_ status: SyncStatus) async -> CLIError {
        let server = options.server
        let waited = "\(Int(options.timeout)) s"
        guard status.connection == .live else {
            if await client.lastConnectionFailure == nil, case .catchingUp = status.connection {
                return .server("the server at \(server) did not finish sending what this device missed within \(waited)")
            }
            return .server(CLIError.unreachable(await context))
        }
        if !status.incidents.isEmpty {
            let list = status.incidents.map { "\($0.detail) (since \(Dates.format(millis: $0.openedAt)))" }
            return .security("not everything is in sync with \(server): " + list.joined(separator: "; "))
        }
        let missing = status.members.reduce(0) { $0 + $1.knownMissing }
        if missing > 0 {
            return .security(
                "\(missing) change sets known to exist have not arrived from \(server): it withholds them or lost them")
        }
        if status.unacknowledgedEdits > 0 {
            return .server(
                "the server at \(server) did not acknowledge \(status.unacknowledgedEdits) local edits within \(waited): "
                    + "they stay on this device and go out the next time it syncs")
        }
        return .server("could not finish syncing with \(server) within \(waited)")
    }

    private func progress(_ status: SyncStatus, elapsed: Duration) async -> String {
        let time = "\(elapsed.components.seconds) s of \(Int(options.timeout)) s"
        let server = options.server
        switch status.connection {
        case .live:
            if status.unacknowledgedEdits > 0 {
                return "waiting for the server to acknowledge \(status.unacknowledgedEdits) local edits (\(time))…"
            }
            let missing = status.members.reduce(0) { $0 + $1.knownMissing }
            if missing > 0 { return "waiting for \(missing) change sets known to exist (\(time))…" }
            return "checking what the server at \(server) holds (\(time))…"
        case .catchingUp:
            return "catching up with the server at \(server) (\(time))…"
        case .connecting, .offline, .refused:
            if let failure = await client.lastConnectionFailure {
                return "cannot reach the server at \(server) yet: \(failure); trying again (\(time))…"
            }
            return "connecting to the server at \(server) (\(time))…"
        }
    }
}
