public import Foundation

/// Everything a live run (`cloak-sim live`) depends on.
///
/// ```swift
/// let options = LiveOptions(servers: [URL(string: "ws://127.0.0.1:8080/v1/sync")!], accounts: 10, devices: 3,
///                           durationSeconds: 15)
/// let result = try await LiveSimulation(options: options).run()
/// ```
public struct LiveOptions: Sendable, CustomStringConvertible {
    /// The servers' WebSocket URLs; devices are spread over all of them (device `i` of the run
    /// uses server `i mod count`), so the devices of one account talk to different nodes.
    public var servers: [URL]
    /// Accounts.
    public var accounts: Int
    /// Devices per account (the first creates the account, the others are linked to it).
    public var devices: Int
    /// Seconds the workload runs.
    public var durationSeconds: Double
    /// Operations per second over every device together (an open loop: the schedule does not
    /// wait for slow calls; an operation meant for a device still busy with two is skipped and
    /// counted).
    public var rate: Double
    /// The server's SQLite database file, scanned for canaries with its `-wal` and `-shm`.
    public var serverDatabase: URL?
    /// Operations issued at most, whatever the duration and rate.
    public var operationsMax: Int
    /// Seconds allowed after the workload for every account to converge.
    public var settleSeconds: Double
    /// Seconds allowed to create the accounts and link their devices.
    public var setupSeconds: Double
    /// Seeds the workload's choices (which device, which operation, which message).
    public var seed: UInt64
    /// Accounts set up at once.
    public var setupParallelism: Int
    /// Where device stores live (a fresh temporary directory, removed at the end, when nil).
    public var workDirectory: URL?

    /// Defaults: 2 operations per second per account, a cap of 200,000 operations, 60 s to settle.
    public init(
        servers: [URL], accounts: Int = 10, devices: Int = 3, durationSeconds: Double = 15, rate: Double? = nil,
        serverDatabase: URL? = nil, operationsMax: Int = 200_000, settleSeconds: Double = 60, setupSeconds: Double = 300,
        seed: UInt64 = 1, setupParallelism: Int = 4, workDirectory: URL? = nil
    ) {
        self.servers = servers
        self.accounts = accounts
        self.devices = devices
        self.durationSeconds = durationSeconds
        self.rate = rate ?? Double(2 * accounts)
        self.serverDatabase = serverDatabase
        self.operationsMax = operationsMax
        self.settleSeconds = settleSeconds
        self.setupSeconds = setupSeconds
        self.seed = seed
        self.setupParallelism = setupParallelism
        self.workDirectory = workDirectory
    }

    /// The server database and its companions, when given.
    public var serverDatabaseFiles: [URL] {
        guard let serverDatabase else { return [] }
        return ["", "-wal", "-shm"].map { URL(fileURLWithPath: serverDatabase.path + $0) }
    }

    /// The server device `index` of the run uses (device `slot` of account `a` is index
    /// `a × devices + slot`).
    public func server(forDevice index: Int) -> URL { servers[index % servers.count] }

    /// "accounts=10 devices=3 …" (printed first, so a run can be repeated).
    public var description: String {
        "servers=\(servers.map(\.absoluteString).joined(separator: ",")) accounts=\(accounts) devices=\(devices) "
            + "duration=\(Self.format(durationSeconds))s rate=\(Self.format(rate))/s seed=\(seed) "
            + "max-ops=\(operationsMax) settle=\(Self.format(settleSeconds))s"
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
    }
}
