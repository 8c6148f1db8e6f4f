@_spi(Simulation) import CloakClient
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakServer
@_spi(Randomness) import CloakTesting

extension SimWorld {
    /// The fault kinds a profile enables; `all` draws a mix from the seed (each kind on with
    /// even odds, at least one on).
    func enabledFaults() -> Set<FaultProfile> {
        switch options.faults {
        case .none: return []
        case .all:
            var kinds = Set([FaultProfile.lossy, .partition, .crash, .restore, .hostile].filter { _ in rng.chance(0.5) })
            if kinds.isEmpty { kinds.insert(rng.pick([FaultProfile.lossy, .partition, .crash, .restore, .hostile])) }
            return kinds
        default: return [options.faults]
        }
    }

    /// Schedules the faults of the enabled kinds inside the workload window.
    func scheduleFaults(_ kinds: Set<FaultProfile>) {
        let window = Int(options.workloadMillis)
        if kinds.contains(.lossy) {
            latency = 1...150
            for _ in 0..<rng.within(4...12) {
                schedule(after: UInt64(rng.below(window))) { world in world.cutRandomConnection() }
            }
        }
        if kinds.contains(.partition) {
            for _ in 0..<rng.within(1...4) {
                schedule(after: UInt64(rng.below(window))) { world in world.partition(for: UInt64(world.rng.within(500...8_000))) }
            }
        }
        if kinds.contains(.crash) {
            for _ in 0..<rng.within(2...8) {
                schedule(after: UInt64(rng.below(window))) { world in world.crashRandomDevice() }
            }
            for _ in 0..<rng.within(0...2) {
                schedule(after: UInt64(rng.below(window))) { world in world.restartServer() }
            }
        }
        if kinds.contains(.restore) {
            let backupAt = UInt64(rng.below(window / 2))
            let restoreAt = backupAt + UInt64(rng.within(1_000...max(1_001, window / 2)))
            schedule(after: backupAt) { world in world.takeBackup() }
            schedule(after: restoreAt) { world in world.restoreBackup() }
        }
        if kinds.contains(.hostile) {
            scheduleHostility(window: window)
        }
    }

    func fault(_ name: String) {
        notes.faults[name, default: 0] += 1
        trace.add("fault:\(name)", -1)
    }

    /// Cuts one live connection: whatever was in flight is lost (TCP resets; no message is
    /// ever lost inside a live connection).
    func cutRandomConnection() {
        let connected = devices.filter { $0.connection != nil }
        guard !connected.isEmpty else { return }
        let device = rng.pick(connected)
        fault("cut")
        dropConnection(device)
        schedule(.disconnected(device: device.index, generation: device.generation), at: now + delay())
    }

    /// Cuts a random set of devices off the server for `duration`.
    func partition(for duration: UInt64) {
        let cut = devices.filter { _ in rng.chance(0.4) }
        guard !cut.isEmpty else { return }
        fault("partition")
        for device in cut {
            partitioned.insert(device.index)
            if device.connection != nil {
                dropConnection(device)
                schedule(.disconnected(device: device.index, generation: device.generation), at: now + delay())
            }
        }
        schedule(after: duration) { world in
            for device in cut { world.partitioned.remove(device.index) }
        }
    }

    /// Crashes a device (sometimes in the middle of its next write) and reopens it later.
    func crashRandomDevice() {
        let up = devices.filter { $0.isUp && $0.status != .fresh }
        guard !up.isEmpty else { return }
        let device = rng.pick(up)
        if rng.chance(0.5) {
            // The crash lands inside a commit: the next write dies part-way, then the app does.
            fault("crash mid-commit")
            device.store.failWrite(afterMutations: rng.within(0...6))
            randomOperation(device.account)
            device.store.clearPlantedFailure()
        } else {
            fault("crash")
        }
        crash(device)
        schedule(after: UInt64(rng.within(100...5_000))) { world in world.reopen(device) }
    }

    func crash(_ device: SimDevice) {
        dropConnection(device)
        device.engine = nil
        device.scheduledTick = nil
        // Flows in progress die with the app.
        device.flowCallbacks = [:]
    }

    func reopen(_ device: SimDevice) {
        guard !device.isUp else { return }
        do { try device.open(clock: clock, configuration: configuration, verdicts: signatureVerdicts, logger: logger) } catch {
            return notes.fail("durability", "\(device.name) could not reopen its store after a crash: \(error)")
        }
        trace.add("reopen", device.index)
        if device.online, device.status != .fresh { device.engine?.startSync() }
        pump(device)
    }

    /// The server process restarts: connections vanish, staged writes are lost, the store stays.
    func restartServer() {
        fault("server restart")
        server.restart()
        for device in devices where device.connection != nil {
            device.connection = nil
            schedule(.disconnected(device: device.index, generation: device.generation), at: now + delay())
        }
    }

    /// An operator's backup of the server's store.
    func takeBackup() {
        fault("backup taken")
        backup = server.store.backup()
    }

    /// The operator restores the backup: the server restarts on the old copy (ADV-44).
    func restoreBackup() {
        guard let backup else { return }
        fault("restore")
        self.backup = nil
        for account in 0..<options.accounts {
            guard let id = devices.first(where: { $0.account == account && $0.engine?.accountID != nil })?.engine?.accountID
            else { continue }
            restoredLogLength[account] = backup.accountNow(id)?.deviceLog.count ?? 0
        }
        for device in devices where device.connection != nil {
            device.connection = nil
            schedule(.disconnected(device: device.index, generation: device.generation), at: now + delay())
        }
        server = SynchronousServer(
            configuration: Self.serverConfiguration(options), store: backup.backup(),
            random: DeterministicRandom(seed: rng.next()), logger: serverLogger)
    }

    /// Ends every fault: the network heals, crashed devices reopen, every member goes online,
    /// the server is honest from now on.
    func heal() {
        partitioned = []
        latency = 1...20
        hostileOn = false
        // A withholding lasts until the device reports it (or beyond, and the run fails).
        if withholdings.isEmpty, keyWithholdings.isEmpty { intercept = nil }
        serverUp = true
        for device in devices where device.status != .fresh {
            device.store.clearPlantedFailure()
            if !device.isUp { reopen(device) }
            if !device.online, let engine = device.engine {
                device.online = true
                engine.startSync()
                pump(device)
            }
        }
        trace.add("heal", -1)
    }

    /// A device-log fork at an index past the restored backup's log is what a restore can
    /// cause without any dishonesty: devices that never saw the lost entries append their own
    /// at the same index, and a device added by a lost entry can never be admitted again. The
    /// device must raise the alarm and stop (it does: this is where the event arrives); the
    /// checks then leave it out, as a person re-links it. A fork inside the backup's log is a
    /// real failure and stays one.
    func noteForkAfterRestore(_ device: SimDevice, _ events: [SecurityEvent]) {
        if let assistant = assistants.first(where: { $0.client === device }) { return noteForkAfterRestore(assistant, events) }
        guard device.status == .member, let restored = restoredLogLength[device.account] else { return }
        for event in events where event.kind == .deviceLogFork {
            guard let index = event.seq, index >= UInt64(restored) else { continue }
            device.status = .forkedByRestore
            notes.forkedByRestore += 1
            fault("fork after restore")
            return
        }
        // The same limit seen from a device the restored log no longer lists: it cannot read
        // the log (only members may) to see the fork, so the refusal is unfounded to it; it
        // raises the alarm and stops. Only when it holds entries past the restored copy.
        let held = device.engine?.deviceLogWires().count ?? 0
        for event in events where event.kind == .protocolViolation && event.detail.contains("refuses this device") {
            guard held > restored else { continue }
            device.status = .forkedByRestore
            notes.forkedByRestore += 1
            fault("unlisted after restore")
            return
        }
    }
}

extension SimWorld {
    /// The same limit for an assistant (PROTOCOL.md §30 "Healing a rolled-back server"): it
    /// holds an entry the restored server lost and devices that never saw it appended another
    /// at its index. It cannot re-append (its session may not, §29), so its log forks for good:
    /// it raises the alarm, and a person grants it again. The reply checks leave it out.
    func noteForkAfterRestore(_ assistant: SimAssistant, _ events: [SecurityEvent]) {
        guard !assistant.forkedByRestore, let restored = restoredLogLength[assistant.account] else { return }
        for event in events where event.kind == .deviceLogFork {
            guard let index = event.seq, index >= UInt64(restored) else { continue }
            assistant.forkedByRestore = true
            fault("assistant fork after restore")
            return
        }
    }

    /// The signed log, not a flow's reply, says who was removed: a removal whose reply was lost
    /// (a cut connection, a restarted server) still removed the device.
    func noteRemovalsFromLogs() {
        for device in devices where device.status == .member {
            guard let engine = device.engine else { continue }
            var removed = engine.isRemoved
            if !removed,
                let witness = devices.first(where: {
                    $0.account == device.account && $0.index != device.index && $0.status == .member && $0.engine != nil
                })?.engine,
                let listed = try? witness.devices()
            {
                // The witness's own verified log, as its membership lists it: verifying the wires
                // again from genesis (every 2 s of virtual time, for every device) cost a tenth
                // of a release run.
                removed = listed.contains { $0.id == engine.deviceID && !$0.isActive }
            }
            guard removed else { continue }
            device.status = .removed
            device.removedAt = now
            notes.removed += 1
            fault("removal whose reply was lost")
        }
    }
}
