@_spi(Randomness) import CloakCrypto
@_spi(Randomness) public import CloakProtocol
import Foundation
public import Logging
import NIOCore
import PostgresNIO

/// A ``ServerStore`` on PostgreSQL through postgres-nio's pooled `PostgresClient`, with the
/// same schema, migrations and batch rules as ``SQLiteServerStore``. A group commit is one
/// transaction of a few set-based statements (`UNNEST` arrays), so its cost does not grow
/// with round trips per row.
///
/// ```swift
/// let store = try PostgresServerStore(url: "postgres://cloak:secret@127.0.0.1:5432/cloak", logger: logger)
/// try await store.migrate()
/// defer { Task { await store.close() } }
/// ```
///
/// The client's connection pool runs in a task the store owns; ``close()`` ends it. TLS to
/// PostgreSQL follows the URL's `sslmode` (``configuration(_:password:)``).
///
/// Several server processes may share one database (``ServerConfiguration/sharedStore``):
/// commits check and move account versions, announce the accounts they wrote on the
/// `cloak_commits` channel, and ``listenForCommits(onListening:onCommit:)`` hears the other
/// processes' announcements.
public final class PostgresServerStore: ServerStore, CommitNotifier {
    let client: PostgresClient
    let logger: Logger
    /// Identifies this store's own announcements (random, per process).
    let instance: String
    private let runner: Task<Void, Never>
    /// Done once the runner has entered the pool's `run()`: a lease before that waits, and
    /// postgres-nio logs a warning for it, which a migration right after `init` would trigger.
    private let running: Task<Void, Never>

    /// Connects lazily to `url` (`postgres://user:password@host:port/database`, optionally with
    /// `?sslmode=disable|require|verify-ca|verify-full&sslrootcert=FILE`). `password`, when given
    /// (read from a password file), replaces the URL's.
    public init(url: String, password: String? = nil, maximumConnections: Int = 16, logger: Logger) throws(StoreError) {
        var configuration = try Self.configuration(url, password: password)
        configuration.options.maximumConnections = maximumConnections
        // Every query here is a key or key-range lookup. Until autovacuum first analyzes a
        // table that grew from empty (up to a minute), the planner expects a handful of rows and
        // picks a bitmap scan plus a sort of every match for a catch-up page: 56 ms instead of
        // 0.4 ms per page at 100,000 change sets, measured. Without bitmap scans it walks the
        // primary key in cursor order whatever the statistics say. (PgBouncer refuses unknown
        // startup parameters: behind it, list this one in ignore_startup_parameters and set it
        // for the role instead, `ALTER ROLE … SET enable_bitmapscan = off`.)
        configuration.options.additionalStartupParameters.append(("enable_bitmapscan", "off"))
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        instance = SystemRandom().bytes(8).map { String(format: "%02x", $0) }.joined()
        let (started, signal) = AsyncStream<Void>.makeStream()
        runner = Task {
            // run() marks the client running before its first suspension, so whoever waits on
            // `running` resumes after that.
            signal.finish()
            await client.run()
        }
        running = Task { for await _ in started {} }
    }

    /// The client configuration of a `postgres://` URL. TLS follows libpq's `sslmode`: `disable`
    /// (the default: loopback or a private network), `require` (encrypted, the server's
    /// certificate not checked), `verify-ca` (signed by `sslrootcert`, or the system's roots) and
    /// `verify-full` (also for the URL's host name).
    static func configuration(_ url: String, password: String? = nil) throws(StoreError) -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
            let host = components.host, !host.isEmpty
        else { throw .invalidLocation("The database URL must look like postgres://user@host:5432/database.") }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }) { _, last in last }
        let database = components.path.split(separator: "/").first.map(String.init)
        return PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
            password: password ?? components.password, database: database, tls: try tls(query))
    }

    private static func tls(_ query: [String: String]) throws(StoreError) -> PostgresClient.Configuration.TLS {
        let mode = query["sslmode"] ?? "disable"
        var tls = TLSConfiguration.makeClientConfiguration()
        if let roots = query["sslrootcert"] {
            guard FileManager.default.isReadableFile(atPath: roots) else {
                throw .invalidLocation("The database URL's sslrootcert \(roots) does not exist or is not readable; check the path.")
            }
            tls.trustRoots = .file(roots)
        }
        switch mode {
        case "disable":
            return .disable
        case "require":
            tls.certificateVerification = .none
        case "verify-ca":
            tls.certificateVerification = .noHostnameVerification
        case "verify-full":
            tls.certificateVerification = .fullVerification
        default:
            throw .invalidLocation(
                "The database URL's sslmode=\(mode) is not supported; use disable, require, verify-ca or verify-full.")
        }
        return .require(tls)
    }

    /// Creates or upgrades the schema (idempotent).
    public func migrate() async throws(StoreError) {
        await running.value
        do {
            try await client.withTransaction(logger: logger) { connection in
                // One migrator at a time, even across server processes sharing the database.
                try await connection.query("SELECT pg_advisory_xact_lock(7215350)", logger: self.logger)
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS cloak_migrations (id TEXT PRIMARY KEY)", logger: self.logger)
                for (id, statements) in PostgresSchema.migrations {
                    let done = try await connection.query(
                        "SELECT 1 FROM cloak_migrations WHERE id = \(id)", logger: self.logger
                    ).collect()
                    guard done.isEmpty else { continue }
                    for statement in statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                    }
                    try await connection.query("INSERT INTO cloak_migrations (id) VALUES (\(id))", logger: self.logger)
                }
            }
        } catch {
            throw .migrationFailed(Self.describe(error))
        }
    }

    /// Succeeds when the database answers.
    public func ping() async throws(StoreError) {
        await running.value
        _ = try await rows("ping", "SELECT 1")
    }

    /// Releases connections and files.
    public func close() async {
        runner.cancel()
        await runner.value
    }

    /// Applies a batch in one durable transaction; returns the accounts whose version check
    /// failed (their rows were not written). Accounts it checked and wrote are announced.
    @discardableResult
    public func commit(_ batch: WriteBatch) async throws(StoreError) -> Set<AccountID> {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                if let create = PostgresSchema.accountCreation(for: batch) {
                    try await connection.query(create, logger: self.logger)
                }
                var conflicts = Set<AccountID>()
                if !batch.accountVersions.isEmpty {
                    try await connection.query(PostgresSchema.versionLock(for: batch.accountVersions), logger: self.logger)
                    var moved = Set<AccountID>()
                    let update = PostgresSchema.versionUpdate(for: batch.accountVersions)
                    for try await buffer in try await connection.query(update, logger: self.logger).decode(ByteBuffer.self) {
                        moved.insert(try PG.id(buffer))
                    }
                    conflicts = Set(batch.accountVersions.keys).subtracting(moved)
                }
                let kept = batch.removing(conflicts)
                for query in PostgresSchema.statements(for: kept) {
                    try await connection.query(query, logger: self.logger)
                }
                for row in kept.snapshots {
                    try await PostgresSchema.putSnapshot(row, on: connection, logger: self.logger)
                }
                if !kept.accountVersions.isEmpty {
                    let query = PostgresSchema.notification(instance: self.instance, versions: kept.accountVersions)
                    try await connection.query(query, logger: self.logger)
                }
                return conflicts
            }
        } catch {
            throw .operationFailed("commit: \(Self.describe(error))")
        }
    }

    /// Hears other processes' commit announcements on a dedicated pooled connection until the
    /// task is cancelled or the connection fails. `onListening` runs once LISTEN is in force
    /// (anything committed before it was not heard); `onCommit` gets each announced account.
    public func listenForCommits(
        onListening: @Sendable () -> Void, onCommit: @Sendable (AccountID, UInt64) -> Void
    ) async throws(StoreError) {
        let own = instance + " "
        do {
            try await client.withConnection { connection in
                try await connection.listen(on: PostgresSchema.commitChannel) { notifications in
                    onListening()
                    for try await notification in notifications {
                        guard !notification.payload.hasPrefix(own),
                            let (account, version) = Self.announcement(notification.payload)
                        else { continue }
                        onCommit(account, version)
                    }
                }
            }
        } catch {
            throw .unavailable("listen: \(Self.describe(error))")
        }
    }

    /// The account and version of a `cloak_commits` payload (`<instance> <account hex> <version>`).
    static func announcement(_ payload: String) -> (AccountID, UInt64)? {
        let fields = payload.split(separator: " ")
        guard fields.count == 3, let version = UInt64(fields[2]) else { return nil }
        let hex = fields[1]
        guard hex.count == 2 * AccountID.byteCount else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(AccountID.byteCount)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return (AccountID(unchecked: bytes), version)
    }

    // MARK: Helpers

    func rows(_ what: String, _ query: PostgresQuery) async throws(StoreError) -> [PostgresRow] {
        do {
            return try await client.query(query, logger: logger).collect()
        } catch {
            throw .operationFailed("\(what): \(Self.describe(error))")
        }
    }

    /// A description without the query text or bound values (which may hold stored bytes).
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            return "PostgreSQL \(error.code)" + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
        }
        if error is PostgresTransactionError { return "transaction failed" }
        // Only a damaged stored id or hash: the message names the field and its length.
        if let error = error as? ProtocolError { return "damaged row: \(error)" }
        return String(describing: type(of: error))
    }
}

/// Converting identifiers and integers to and from PostgreSQL values.
enum PG {
    static func bytes(_ value: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: value) }
    static func bytes(_ value: some FixedLengthBytes) -> ByteBuffer { value.withUnsafeBytes { ByteBuffer(bytes: $0) } }
    static func int(_ value: UInt64) -> Int64 { Int64(clamping: value) }
    static func array(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }
    static func unsigned(_ value: Int64) -> UInt64 { UInt64(clamping: value) }
    /// A stored identifier or hash; any other length is an error, not a crash.
    static func id<T: FixedLengthBytes>(_ buffer: ByteBuffer) throws(ProtocolError) -> T {
        try T(validating: buffer.readableBytesView, field: "stored \(T.self)")
    }

    static func query(_ sql: String, _ bind: (inout PostgresBindings) -> Void) -> PostgresQuery {
        var bindings = PostgresBindings()
        bind(&bindings)
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }
}
