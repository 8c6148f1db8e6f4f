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
            guard !path.isEmpty else { throw .invalidLocation("sqlite: needs a file path") }
            self = .sqlite(path: path)
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else if text == "memory:" {
            self = .memory
        } else {
            throw .invalidLocation("use sqlite:PATH, postgres://… or memory:")
        }
    }

    /// Opens the store (without migrating it).
    public func open(logger: Logger) throws(StoreError) -> any ServerStore {
        switch self {
        case .sqlite(let path): try SQLiteServerStore(path: path)
        case .postgres(let url): try PostgresServerStore(url: url, logger: logger)
        case .memory: InMemoryServerStore()
        }
    }

    /// The location without a password (for logs).
    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .memory: "memory:"
        case .postgres(let url):
            if let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") {
                String(url[..<scheme.upperBound]) + "…" + String(url[at...])
            } else {
                "postgres://…"
            }
        }
    }
}
