public import CloakServer
import Foundation
public import Logging

extension StoreSettings {
    /// Opens and migrates the store these settings name. A SQLite file that does not exist is
    /// created only with ``create``, owner-only; an existing one whose directory or file other
    /// users may read gets a warning that says how to fix it. A PostgreSQL password file's first
    /// line replaces the URL's password.
    public func openStore(logger: Logger) async throws(StoreError) -> any ServerStore {
        let location = try StoreLocation(parsing: database)
        let password = try passwordFile.map { path throws(StoreError) in try Self.readPassword(path) }
        if case .sqlite(let path) = location, FileManager.default.fileExists(atPath: path) {
            for warning in Self.permissionWarnings(path) { logger.warning("\(warning)") }
        }
        var storeLogger = logger
        // postgres-nio reports every failed connection attempt at info level, with its whole
        // error: an outage would fill the log. Its lines are kept for debugging only; the
        // server itself logs an outage once (and its end).
        if logger.logLevel > .debug { storeLogger.logLevel = max(logger.logLevel, .warning) }
        let store = try location.open(logger: storeLogger, create: create, password: password)
        do throws(StoreError) {
            if case .postgres = location {
                do { try await store.ping(within: .seconds(10)) } catch {
                    throw StoreError.unavailable("\(location) did not answer within 10 s")
                }
            }
            try await store.migrate()
        } catch {
            await store.close()
            throw error
        }
        logger.info("opened the store", metadata: ["location": "\(location)"])
        return store
    }

    static func readPassword(_ path: String) throws(StoreError) -> String {
        guard let data = FileManager.default.contents(atPath: path),
            let line = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first,
            !line.isEmpty
        else {
            throw .invalidLocation(
                "The database password file \(path) could not be read or its first line is empty; write the password on its first line.")
        }
        return String(line)
    }

    /// Sentences for a database file or directory that users other than its owner may read.
    static func permissionWarnings(_ path: String) -> [String] {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var warnings: [String] = []
        for (item, wanted, what) in [(directory, 0o700, "directory"), (path, 0o600, "file")] {
            guard let mode = (try? FileManager.default.attributesOfItem(atPath: item))?[.posixPermissions] as? Int,
                mode & 0o077 != 0
            else { continue }
            warnings.append(
                "The database \(what) \(item) may be read by other users (mode \(String(mode, radix: 8))); "
                    + "run chmod \(String(wanted, radix: 8)) \(item).")
        }
        return warnings
    }
}
