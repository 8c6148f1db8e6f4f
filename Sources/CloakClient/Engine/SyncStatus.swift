public import CloakProtocol

/// What this device can truthfully say about its sync: whether it is connected, what it has
/// not handed to the server yet, how far each member's writing is verified here, and what is
/// known to be wrong. It never says "synced" while something is known to be missing.
///
/// ```swift
/// for await status in await client.syncStatuses() {
///     badge(status.isSynced ? "Up to date" : "\(status.unacknowledgedEdits) waiting")
///     for incident in status.incidents { warn(incident.detail) }
/// }
/// ```
public struct SyncStatus: Sendable, Equatable {
    /// One member device, as this device knows it.
    public struct Member: Sendable, Equatable {
        /// Its id.
        public let device: DeviceID
        /// The device this client runs on.
        public let isThisDevice: Bool
        /// Its change sets this device holds and verified, every chain complete from seq 1.
        public let verifiedChangeSets: UInt64
        /// Its change sets known to exist (signed evidence) that this device does not hold yet.
        public let knownMissing: UInt64
        /// When one of its change sets was last accepted here (ms since the Unix epoch).
        public let lastHeardAt: UInt64?
    }

    /// The connection.
    public let connection: ConnectionState
    /// When the current connection went live (ms), if it is live.
    public let liveSince: UInt64?
    /// Local edits the server has not acknowledged (sealed change sets waiting, plus edits not
    /// sealed yet).
    public let unacknowledgedEdits: Int
    /// The newest cursor the server assigned to this device's pushes on this run.
    public let acknowledgedThrough: UInt64
    /// The newest cursor this device processed.
    public let processedThrough: UInt64
    /// Active members of the account.
    public let members: [Member]
    /// Open incidents (withheld data, a stale device log, a rolled-back server).
    public let incidents: [Incident]

    /// Live, nothing waiting to be sent, nothing known to be missing, no open incident.
    public var isSynced: Bool {
        connection == .live && unacknowledgedEdits == 0 && incidents.isEmpty && members.allSatisfy { $0.knownMissing == 0 }
    }
}

extension ClientEngine {
    /// The sync status now.
    public var syncStatus: SyncStatus {
        let core = self.core
        let (outbox, processed) =
            (try? core.store.read { tx in (try tx.outbox(limit: 100_000).count, try Ledger.cursor(tx)) }) ?? (0, 0)
        var verified: [DeviceID: UInt64] = [:]
        for (key, position) in core.ledger.chains { verified[key.author, default: 0] += position.seq }
        var missing: [DeviceID: UInt64] = [:]
        for (key, count) in core.expectations.missing(chains: core.ledger.chains) { missing[key.author, default: 0] += count }
        let members = (core.log?.activeDevices ?? []).sorted().map { device in
            SyncStatus.Member(
                device: device, isThisDevice: device == core.me, verifiedChangeSets: verified[device] ?? 0,
                knownMissing: missing[device] ?? 0, lastHeardAt: core.heard[device])
        }
        return SyncStatus(
            connection: connectionState, liveSince: liveSince,
            unacknowledgedEdits: outbox + core.waitingBatches.values.reduce(0) { $0 + $1.rows.count },
            acknowledgedThrough: machine.acknowledgedThrough, processedThrough: processed, members: members,
            incidents: core.incidents.values.sorted { $0.id < $1.id })
    }
}
