/// Which faults a deterministic run injects (`cloak-sim run --faults PROFILE`).
public enum FaultProfile: String, Sendable, CaseIterable {
    /// An honest server and a reliable network.
    case none
    /// Variable latency, connections cut mid-flight, messages stalled.
    case lossy
    /// Devices cut off from the server for a while, then healed.
    case partition
    /// Devices crash (at random points, including in the middle of a commit) and reopen; the
    /// server restarts from its store.
    case crash
    /// The server's store rolled back to an earlier copy, as an operator restoring a backup.
    case restore
    /// The server misbehaves in every way the threat model lists.
    case hostile
    /// All of the above, each run drawing its mix from the seed.
    case all
}

/// Everything a deterministic run depends on: with equal options, two runs are equal event for
/// event (their trace hashes match).
public struct SimOptions: Sendable, CustomStringConvertible {
    /// The seed every decision derives from.
    public var seed: UInt64
    /// Accounts.
    public var accounts: Int
    /// Devices each account starts with.
    public var devices: Int
    /// Workload operations per account.
    public var ops: Int
    /// The fault profile.
    public var faults: FaultProfile
    /// Virtual milliseconds the workload is spread over (faults happen in this window).
    public var workloadMillis: UInt64
    /// Virtual milliseconds allowed after healing for every device to converge.
    public var livenessMillis: UInt64
    /// Events a run may process before it is declared livelocked (a failure: devices and the
    /// server keep talking without converging). By default ``eventBudget(accounts:devices:ops:)``.
    public var maxEvents: Int
    /// Whether accounts grant AI assistants (PROTOCOL.md §29) during the workload, and, under
    /// a hostile server, a hostile assistant the server colludes with. On by default for `all`.
    public var assistants: Bool
    /// Whether a hostile server also weakens the Argon2id parameters it serves a passphrase
    /// recovery (ADV-25; the server then offers passphrase recovery). Off by default: it shifts
    /// the runs of existing hostile seeds.
    public var kdfDowngrade: Bool

    /// Defaults: 3 accounts × 3 devices × 200 operations, no faults.
    public init(
        seed: UInt64, accounts: Int = 3, devices: Int = 3, ops: Int = 200, faults: FaultProfile = .none,
        workloadMillis: UInt64 = 60_000, livenessMillis: UInt64 = 600_000, maxEvents: Int? = nil,
        assistants: Bool? = nil, kdfDowngrade: Bool = false
    ) {
        self.kdfDowngrade = kdfDowngrade
        self.assistants = assistants ?? (faults == .all)
        self.seed = seed
        self.accounts = accounts
        self.devices = devices
        self.ops = ops
        self.faults = faults
        self.workloadMillis = workloadMillis
        self.livenessMillis = livenessMillis
        self.maxEvents = maxEvents ?? Self.eventBudget(accounts: accounts, devices: devices, ops: ops)
    }

    /// The default event budget: 100,000 up to the default size (3 accounts × 3 devices × 200
    /// operations, which takes about 7,000 events), growing with accounts × devices × operations
    /// beyond it, because a run's events do (every operation reaches every device of its
    /// account). A fixed budget failed every large run as livelocked while it was still healing.
    public static func eventBudget(accounts: Int, devices: Int, ops: Int) -> Int {
        let size = max(accounts, 1) * max(devices, 1) * max(ops, 1)
        return 100_000 * max(1, (size + 1_799) / 1_800)
    }

    /// "seed=… accounts=… …" (printed first, so a failure can be replayed).
    public var description: String {
        "seed=\(seed) accounts=\(accounts) devices=\(devices) ops=\(ops) faults=\(faults.rawValue) "
            + "workload=\(workloadMillis)ms liveness=\(livenessMillis)ms assistants=\(assistants ? "on" : "off")"
            + (kdfDowngrade ? " kdf-downgrade=on" : "")
    }
}
