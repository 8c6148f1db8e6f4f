/// One setting of `cloak-server`: its config-file key, its flag and environment variable, what
/// kind of value it takes, its default and what it does. ``Setting/all`` is the one table the
/// flags, the environment, the config file, `--help` and docs/operations.md all follow.
public struct Setting: Sendable, Hashable {
    /// What a value must look like.
    public enum Kind: Sendable, Hashable {
        /// Any text.
        case text
        /// 1…65535 (0: any free port).
        case port
        /// A whole number ≥ 1.
        case count
        /// A size like `4 MiB`.
        case size
        /// A size, or `unlimited`.
        case sizeOrUnlimited
        /// A duration like `30s`.
        case duration
        /// A duration, or `never`.
        case durationOrNever
        /// `true` or `false`.
        case bool
        /// A file that must exist.
        case existingFile
        /// One of these words.
        case choice([String])
        /// Comma-separated IP addresses.
        case addresses

        /// How `--help` names the value.
        var placeholder: String {
            switch self {
            case .text: "TEXT"
            case .port: "PORT"
            case .count: "N"
            case .size: "SIZE"
            case .sizeOrUnlimited: "SIZE|unlimited"
            case .duration: "DURATION"
            case .durationOrNever: "DURATION|never"
            case .bool: "true|false"
            case .existingFile: "FILE"
            case .choice(let words): words.joined(separator: "|")
            case .addresses: "IP,IP,…"
            }
        }
    }

    /// The config-file key (camelCase), e.g. `maxFrameBytes`.
    public let key: String
    /// The kind of value.
    public let kind: Kind
    /// The default, written as a person would (nil: unset).
    public let defaultValue: String?
    /// What it does, one sentence.
    public let summary: String

    init(_ key: String, _ kind: Kind, _ defaultValue: String?, _ summary: String) {
        self.key = key
        self.kind = kind
        self.defaultValue = defaultValue
        self.summary = summary
    }

    /// `--max-frame-bytes`.
    public var flag: String {
        "--" + key.reduce(into: "") { out, c in out += c.isUppercase ? "-" + c.lowercased() : String(c) }
    }

    /// `CLOAK_MAX_FRAME_BYTES` (the name swift-configuration's environment provider reads for the
    /// key under the `cloak` prefix).
    public var variable: String {
        "CLOAK_" + key.reduce(into: "") { out, c in out += c.isUppercase ? "_" + String(c) : c.uppercased() }
    }

    /// Its `--help` entry: the flag, its variable and default on one line, what it does on
    /// the next (short lines: the help text is wrapped at the terminal's width).
    public var helpLine: String {
        "  \(flag) \(kind.placeholder)  (\(variable); default: \(defaultValue ?? "none"))\n      \(summary)"
    }
}

extension Setting {
    /// Where data lives, and how to reach it (every command).
    public static let store: [Setting] = [
        Setting(
            "database", .text, "sqlite:./cloak-data/cloak.sqlite",
            "sqlite:PATH, postgres://user@host:5432/db[?sslmode=require|verify-full&sslrootcert=FILE] or memory:"),
        Setting("databasePasswordFile", .existingFile, nil, "A file holding the PostgreSQL password (overrides the URL's)"),
        Setting("logLevel", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]), "info", "Log level"),
        Setting("logFormat", .choice(["text", "json"]), "text", "text lines, or one JSON object per line"),
    ]

    /// The server's own settings (`serve`).
    public static let server: [Setting] = [
        Setting("host", .text, "127.0.0.1", "Interface to bind"),
        Setting("port", .port, "8080", "TCP port (0: any free port)"),
        Setting("tlsCert", .existingFile, nil, "PEM certificate chain for TLS (wss://); reloaded on SIGHUP"),
        Setting("tlsKey", .existingFile, nil, "PEM private key for --tls-cert"),
        Setting(
            "trustedProxies", .addresses, nil,
            "Load balancers whose X-Forwarded-For names the client (for the per-address limits)"),
        Setting("verifyChangeSetSignatures", .bool, "false", "Check each pushed change set's signature on arrival"),
        Setting("maxFrameBytes", .size, "4 MiB", "Largest WebSocket message"),
        Setting("maxChangeSetsPerPush", .count, "256", "Most change sets in one push"),
        Setting("maxChangeSetBytes", .size, "1 MiB", "Largest change set or snapshot"),
        Setting("maxPushesPerSecond", .count, "200", "Pushes per second per device"),
        Setting("maxAccountBytes", .size, "8 GiB", "Stored bytes per account"),
        Setting("maxTotalBytes", .sizeOrUnlimited, "unlimited", "Stored bytes of all accounts together"),
        Setting("maxCatchUpBatch", .count, "1000", "Change sets per catch-up frame"),
        Setting("maxMailboxBytes", .size, "1 MiB", "Largest pairing-mailbox payload"),
        Setting("mailboxTtl", .duration, "10m", "Longest lifetime of a pairing-mailbox slot (at most 10m)"),
        Setting("maxConnections", .count, "20000", "Open connections in all"),
        Setting("maxConnectionsPerAddress", .count, "200", "Open connections from one client address"),
        Setting("maxConnectionsPerAccount", .count, "64", "Open connections of one account"),
        Setting("registrationsPerAddress", .count, "10", "Accounts one address may create per registration window"),
        Setting("registrations", .count, "1000", "Accounts all addresses may create per registration window"),
        Setting("registrationWindow", .duration, "1h", "The registration limits' sliding window"),
        Setting("recoveryAuthentications", .count, "5", "Recovery-key logins per account per recovery window"),
        Setting("recoveryFetches", .count, "20", "Recovery-blob fetches per account per recovery window"),
        Setting("recoveryWindow", .duration, "10m", "The recovery limits' sliding window"),
        Setting(
            "recoveryKeyFile", .existingFile, nil,
            "The recovery (OPRF) key file, mode 0600, kept apart from the database; without it (or CLOAK_RECOVERY_KEYS) "
                + "passphrase recovery is off"),
        Setting("recoveryLockoutAfter", .count, "10", "Counted recovery guesses per account before recovery locks"),
        Setting("recoveryLockout", .duration, "1h", "The first recovery lockout (doubling per further guess)"),
        Setting("recoveryLockoutMax", .duration, "7d", "The longest recovery lockout"),
        Setting("recoveryEvaluationsPerAddress", .count, "30", "Recovery guesses one address may send per recovery window"),
        Setting("maxUnauthenticatedConnections", .count, "2000", "Open connections that have not authenticated, in all"),
        Setting(
            "maxUnauthenticatedConnectionsPerAddress", .count, "20",
            "Open connections that have not authenticated, from one client address"),
        Setting("handshakeTimeout", .duration, "30s", "Time to authenticate"),
        Setting("idleTimeout", .duration, "2m", "Time without a frame before a connection is closed"),
        Setting("maxOutboundQueueBytes", .size, "8 MiB", "Queued output per connection before SLOW_CONSUMER"),
        Setting("compactEvery", .durationOrNever, "never", "Run compaction in the server this often (e.g. 1h)"),
    ]

    /// Every setting a config file may hold.
    public static let all: [Setting] = store + server
}
