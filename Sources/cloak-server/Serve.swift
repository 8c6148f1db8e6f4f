import ArgumentParser
import CloakProtocol
import CloakServer
import CloakServerApp
import CloakServerHTTP
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve /v1/sync, /healthz, /readyz and /metrics.",
        discussion: settingsHelp(Setting.all)
            + "\n\nSIGTERM or SIGINT shuts down gracefully; SIGHUP reloads the TLS certificate and key.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let settings = try await report {
            let flags = try SettingsLoader.flags(common.settings, allowed: Setting.all)
            return try await ServerSettings.load(
                flags: flags, create: common.create, environment: common.environment, configFile: common.configFile)
        }
        let logger = settings.store.logger()
        let database = try await settings.store.open(logger)
        var configuration = settings.http
        // Several cloak-server processes may share one PostgreSQL database (docs/design.md "Stores").
        configuration.sync.sharedStore = database is PostgresServerStore
        if configuration.sync.sharedStore {
            logger.info("shared database: other cloak-server processes may serve the same accounts (LISTEN cloak_commits)")
        }
        logger.info("limits", metadata: Self.limits(configuration))
        let server = CloakHTTPServer(configuration: configuration, store: database, logger: logger)
        let (host, tls) = (configuration.host, configuration.tls != nil)
        let result = await Result(catching: { () async throws -> Void in
            let group = ServiceGroup(
                services: try server.services { port in
                    // A stable line on stdout: scripts and tests read the bound port from it.
                    FileHandle.standardOutput.write(Data("cloak-server listening on \(host):\(port)\n".utf8))
                    logger.info("listening", metadata: ["host": "\(host)", "port": "\(port)", "tls": "\(tls)"])
                },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        })
        await database.close()
        if case .failure(let error) = result {
            complain(Self.sentence(for: error, host: host, port: configuration.port))
            throw ExitCode(1)
        }
        logger.info("stopped")
    }

    /// The limits in force, human-readable, for the start-up log line.
    static func limits(_ configuration: HTTPServerConfiguration) -> Logger.Metadata {
        let sync = configuration.sync
        func unlimited(_ value: Int) -> String { value == .max ? "unlimited" : "\(value)" }
        return [
            "max_frame": "\(ByteCount(Int64(sync.limits.maxFrameBytes)))",
            "max_change_set": "\(ByteCount(Int64(sync.limits.maxChangeSetBytes)))",
            "max_account": "\(ByteCount(sync.limits.maxAccountBytes))",
            "max_total": sync.maxTotalStoredBytes == .max ? "unlimited" : "\(ByteCount(sync.maxTotalStoredBytes))",
            "max_connections": "\(unlimited(sync.maxConnections))",
            "max_connections_per_address": "\(unlimited(sync.maxConnectionsPerAddress))",
            "registrations": "\(unlimited(sync.maxRegistrationsPerAddress)) per address, \(unlimited(sync.maxRegistrations)) in all per \(DurationText.format(milliseconds: sync.registrationWindowMs))",
            "idle_timeout": "\(DurationText.format(milliseconds: sync.idleTimeoutMs))",
            "compact_every": "\(configuration.compactEveryMs.map { DurationText.format(milliseconds: $0) } ?? "never")",
        ]
    }

    /// A start-up failure as a sentence (the listener's socket errors name errno values).
    static func sentence(for error: any Error, host: String, port: Int) -> String {
        let text = String(describing: error)
        if text.contains("Address already in use") {
            return "Another program already listens on \(host):\(port); stop it or choose another --port."
        }
        if text.contains("Permission denied") || text.contains("EACCES") {
            return "This user may not listen on \(host):\(port) (ports below 1024 need privileges); choose another --port."
        }
        if text.contains("Cannot assign requested address") || text.contains("EADDRNOTAVAIL") {
            return "\(host) is not an address of this machine; set --host to one of its addresses, or 0.0.0.0 for all."
        }
        if let error = error as? StoreError { return error.description }
        // An error that describes itself as a sentence (a certificate that does not read), not as
        // a Swift value such as `ioOnClosedChannel(…)`.
        if text.range(of: #"[A-Za-z_][A-Za-z0-9_]*\("#, options: .regularExpression) == nil {
            return text
        }
        return "The server stopped with an error it could not name (\(type(of: error))); the log above has the details."
    }
}

extension Result where Failure == any Error {
    /// Runs an async body to a result.
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
