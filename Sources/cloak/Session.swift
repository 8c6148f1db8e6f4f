import CloakClient
import Foundation

/// One command's use of a device: the directory's lock, the open client, and the security
/// events it raised while the command ran (each printed once, as it fires).
final class Session {
    let options: DeviceOptions
    let directory: DeviceDirectory
    let client: CloakClient
    private let lock: DirectoryLock
    private let events: Task<Int, Never>

    private init(options: DeviceOptions, directory: DeviceDirectory, client: CloakClient, lock: DirectoryLock, events: Task<Int, Never>) {
        self.options = options
        self.directory = directory
        self.client = client
        self.lock = lock
        self.events = events
    }

    /// Opens the device at `--dir`. Only the commands that create a device (`creating`) may
    /// find nothing there; the others stop at once, before any key is made. Exits on failure.
    static func open(_ options: DeviceOptions, creating: Bool = false) async -> Session {
        let directory = DeviceDirectory(options.dir)
        let client: CloakClient
        let lock: DirectoryLock
        do throws(CLIError) {
            let url = try options.serverURL()
            let transport = try options.transport(logger: options.logger)
            if creating { try directory.create() } else { try directory.requireDevice() }
            lock = try directory.lock()
            do {
                client = try CloakClient.open(
                    directory: directory.url, server: url, transport: transport, configuration: options.clientConfiguration,
                    logger: options.logger)
            } catch {
                throw CLIError(error, FailureContext(directory: options.dir, server: options.server))
            }
        } catch {
            terminate(error)
        }
        let stream = await client.securityEvents()
        let events = Task {
            var alarms = 0
            for await event in stream {
                switch event.kind {
                case .incidentResolved:
                    note(event.detail.isEmpty ? "resolved: \(event.kind.summary)" : event.detail)
                case .deviceAdded, .recoveryAttempt, .recoveryLocked:
                    // Alerts for a person to check (it may have been them), not a detected attack.
                    note(EventLines.sentence(event))
                default:
                    alarms += 1
                    note(EventLines.sentence(event))
                }
            }
            return alarms
        }
        let session = Session(options: options, directory: directory, client: client, lock: lock, events: events)
        if !creating { await session.requireMembership() }
        return session
    }

    /// A device that has no account, or learned it was removed, can do nothing here: say so now
    /// rather than after waiting for the server.
    private func requireMembership() async {
        if await client.isRemovedFromAccount { await fail(ClientError.removedFromAccount) }
        if await client.accountID == nil { await fail(ClientError.noAccount) }
    }

    /// What failure messages may name.
    var context: FailureContext {
        get async {
            FailureContext(
                directory: options.dir, server: options.server, connectionFailure: await client.lastConnectionFailure,
                removal: await client.removal)
        }
    }

    /// Ends the command with `error` as a sentence (and its exit code, or 3 if a security event
    /// fired), after closing the client and printing the events.
    func fail(_ error: any Error) async -> Never {
        let context = await self.context
        let failure: CLIError =
            switch error {
            case let error as CLIError: error
            case let error as ClientError: CLIError(error, context)
            default: .failed(String(describing: error))
            }
        let alarms = await close()
        FileHandle.standardError.write(Data("cloak: \(failure.description)\n".utf8))
        exit(max(failure.exitCode, alarms > 0 ? 3 : 0))
    }

    /// Ends the command: exit 0 (or 3 if a security event fired while it ran).
    func finish() async -> Never {
        let alarms = await close()
        if alarms > 0 { note("\(alarms == 1 ? "a security event" : "\(alarms) security events") fired during this command (above)") }
        exit(alarms > 0 ? 3 : 0)
    }

    /// Closes the client (saving its state) and waits until every event it raised is printed.
    private func close() async -> Int {
        do { try await client.close() } catch { events.cancel() }
        return await events.value
    }

    /// Runs `body`, saying every two seconds that it still waits for the server.
    func withProgress<T>(_ body: () async throws -> T) async rethrows -> T {
        let what = "still waiting for the server at \(options.server)"
        let ticker = Task {
            let clock = ContinuousClock()
            let started = clock.now
            try? await Task.sleep(for: .seconds(2))
            while !Task.isCancelled {
                note("\(what) (\((clock.now - started).components.seconds) s)…")
                try? await Task.sleep(for: .seconds(2))
            }
        }
        defer { ticker.cancel() }
        return try await body()
    }
}

/// Runs `body` with the device at `--dir` open, for the commands that need nothing more
/// (`link`, `accept`, `recover`, `recovery-setup`). Only commands that create a device pass
/// `creating`. With `sync`, the device first gets up to date with the server (bounded by
/// `--timeout`, with progress) and afterwards hands it what `body` wrote.
func withClient(
    _ options: DeviceOptions, creating: Bool = false, sync: Bool = true, _ body: (CloakClient) async throws -> Void
) async throws {
    let session = await Session.open(options, creating: creating)
    if sync { await session.requireSync(for: options.wait) }
    do {
        if sync {
            try await session.withProgress { try await body(session.client) }
        } else {
            try await body(session.client)
        }
    } catch {
        await session.fail(error)
    }
    if sync { await session.requireSync(for: options.wait) }
    await session.finish()
}
