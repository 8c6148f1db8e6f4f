import Foundation
public import Logging

/// Where the server keeps its data, as given on the command line: `sqlite:PATH`,
/// `postgres://user:password@host:port/database`, or `memory:` (tests; nothing survives).
///
/// ```swift
/// let location = try StoreLocation(parsing: "sqlite:./cloak-data/cloak.sqlite")
/// let store = try location.open(logger: logger)
/// ```
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    /// An SQLite database file.
    case sqlite(path: String)
    /// A PostgreSQL database.
    case postgres(url: String)
    /// An in-memory store.
    case memory

    /// Parses a location string.
    public init(parsing text: String) throws(StoreError) {
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                throw .invalidLocation("The database setting sqlite: needs a file path, such as sqlite:/var/lib/cloak/cloak.sqlite.")
            }
            self = .sqlite(path: path)
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else if text == "memory:" {
            self = .memory
        } else {
            throw .invalidLocation(
                "The database setting must be sqlite:PATH, postgres://user@host:5432/database or memory:, not \"\(Self.redacted(text))\".")
        }
    }

    /// Opens the store (without migrating it). A SQLite file that does not exist is created only
    /// with `create` (a mistyped path must not silently start an empty database); `password`
    /// replaces a PostgreSQL URL's.
    public func open(logger: Logger, create: Bool = true, password: String? = nil) throws(StoreError) -> any ServerStore {
        switch self {
        case .sqlite(let path): try SQLiteServerStore(path: path, create: create)
        case .postgres(let url): try PostgresServerStore(url: url, password: password, logger: logger)
        case .memory: InMemoryServerStore()
        }
    }

    /// A location as typed, without anything that could be a password.
    static func redacted(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@"), let scheme = text.range(of: "://") else { return text }
        return String(text[..<scheme.upperBound]) + "…" + String(text[at...])
    }

    /// The location without a password (for logs).
    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .memory: "memory:"
        case .postgres(let url): url.contains("@") ? Self.redacted(url) : url
        }
    }
}
