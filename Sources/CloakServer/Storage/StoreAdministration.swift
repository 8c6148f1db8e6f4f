public import CloakProtocol

/// One account as the operator sees it (`cloak-server accounts list|show`): sizes, counts and
/// times, never content.
public struct AccountSummary: Sendable, Equatable {
    /// The account.
    public var account: AccountID
    /// Bytes counted against its quota.
    public var storedBytes: Int64
    /// Stored change sets whose bytes are kept (compacted ones are not counted).
    public var changeSets: Int
    /// Its serialised device-log entries (the caller verifies them to count devices).
    public var deviceLog: [[UInt8]]
    /// The highest committed cursor.
    public var headCursor: UInt64
    /// When a commit last wrote its data (ms since the Unix epoch; 0: not recorded).
    public var lastWriteMs: UInt64
    /// Whether the operator blocked it.
    public var blocked: Bool

    /// Creates a summary.
    public init(
        account: AccountID, storedBytes: Int64, changeSets: Int, deviceLog: [[UInt8]], headCursor: UInt64,
        lastWriteMs: UInt64, blocked: Bool
    ) {
        self.account = account
        self.storedBytes = storedBytes
        self.changeSets = changeSets
        self.deviceLog = deviceLog
        self.headCursor = headCursor
        self.lastWriteMs = lastWriteMs
        self.blocked = blocked
    }
}

/// What erasing an account removed: rows per table (`cloak-server accounts delete`).
public struct ErasureReport: Sendable, Equatable {
    /// Rows deleted, by table name.
    public var rows: [String: Int]

    /// Creates a report.
    public init(rows: [String: Int]) {
        self.rows = rows
    }

    /// Every row deleted.
    public var total: Int { rows.values.reduce(0, +) }

    /// The tables an account has rows in, in the order they are erased (children first).
    public static let tables = [
        "change_sets", "chains", "device_log", "key_envelopes", "conversation_keys", "snapshots", "recoveries", "cursor_acks",
        "accounts",
    ]
}

/// The store as a whole, for metrics and capacity planning.
public struct StoreUsage: Sendable, Equatable {
    /// Accounts.
    public var accounts: Int
    /// Bytes counted against all quotas together.
    public var storedBytes: Int64
    /// The database's own size on disk (files, or PostgreSQL's database size); 0 in memory.
    public var databaseBytes: Int64

    /// Creates a usage record.
    public init(accounts: Int, storedBytes: Int64, databaseBytes: Int64) {
        self.accounts = accounts
        self.storedBytes = storedBytes
        self.databaseBytes = databaseBytes
    }
}
