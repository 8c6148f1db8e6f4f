import ArgumentParser
import CloakServer
import CloakServerApp
import CloakServerHTTP
import Foundation
import Logging

/// `cloak-server serve | migrate | compact | backup | accounts | recovery-keys`. Settings come from flags, the
/// environment (`CLOAK_…`) and a JSON config file (`--config`), in that order of precedence
/// (``Setting/all`` lists them; `--help` prints them). Started from `main.swift`.
struct CloakServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-server",
        abstract: "The Cloak sync server: stores and relays end-to-end encrypted change sets.",
        discussion: "Operations guide: docs/operations.md.",
        version: "cloak-server \(ServerBuild.version) (protocol \(ServerBuild.protocolVersions))",
        subcommands: [Serve.self, Migrate.self, Compact.self, Backup.self, Accounts.self, RecoveryKeys.self],
        defaultSubcommand: Serve.self)
}

/// What every command accepts: a config file, `--create`, and settings as `--name value`.
struct CommonOptions: ParsableArguments {
    @Option(help: "A JSON config file of settings (CLOAK_CONFIG); flags and CLOAK_… variables override it.")
    var config: String?

    @Flag(help: "Create the SQLite database if it does not exist (without it, a missing file is an error).")
    var create = false

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    var configFile: String? { config ?? environment["CLOAK_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } }

    /// The store and log settings, checked.
    func storeSettings() async throws -> StoreSettings {
        try await report {
            let flags = try SettingsLoader.flags(settings, allowed: Setting.store)
            return try await StoreSettings.load(flags: flags, create: create, environment: environment, configFile: configFile)
        }
    }
}

/// The `--help` text of a list of settings.
func settingsHelp(_ settings: [Setting]) -> String {
    "Settings (flag, or CLOAK_… variable, or key of the --config JSON file):\n"
        + settings.map(\.helpLine).joined(separator: "\n")
}

/// Runs `body`; a configuration or store mistake is printed as its sentences on standard error
/// and the command exits with status 64 (configuration) or 1 (anything else).
func report<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ConfigurationError {
        for problem in error.problems { complain(problem) }
        throw ExitCode(64)
    } catch let error as StoreError {
        complain(error.description)
        throw ExitCode(1)
    }
}

/// One line on standard error, prefixed with the command's name.
func complain(_ sentence: String) {
    FileHandle.standardError.write(Data("cloak-server: \(sentence)\n".utf8))
}

extension StoreSettings {
    /// Bootstraps logging (text or JSON on standard error) and returns the server's logger.
    func logger() -> Logger {
        let level = logLevel
        let format = logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .json:
                return JSONLogHandler(label: label, level: level)
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        var logger = Logger(label: "cloak-server")
        logger.logLevel = level
        return logger
    }

    /// Opens the store, or exits with its sentence.
    func open(_ logger: Logger) async throws -> any ServerStore {
        try await report { try await openStore(logger: logger) }
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or upgrade the database schema, then exit.", discussion: settingsHelp(Setting.store))

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let settings = try await common.storeSettings()
        let database = try await settings.open(settings.logger())
        await database.close()
        print("cloak-server: the schema is current")
    }
}

struct Compact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop change sets covered by snapshots that every active device has acknowledged.",
        discussion: settingsHelp(Setting.store))

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let settings = try await common.storeSettings()
        let logger = settings.logger()
        let database = try await settings.open(logger)
        let nowMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        let report = await outcome { () async throws(StoreError) -> CompactionReport in
            try await Compactor.run(store: database, nowMs: nowMs, logger: logger)
        }
        await database.close()
        let done = try report.get()
        print(
            "cloak-server: compacted \(done.accounts) accounts: dropped \(done.changeSetsDropped) change sets"
                + " (\(ByteCount(done.bytesDropped))), purged \(done.mailboxesPurged) expired mailboxes")
    }
}

/// Runs `body` to a `Result`, so the store can be closed before an error is reported.
func outcome<T>(_ body: () async throws(StoreError) -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch {
        complain(error.description)
        return .failure(ExitCode(1))
    }
}
