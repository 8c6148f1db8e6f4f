import ArgumentParser
import CloakServer
import CloakServerHTTP
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

/// `cloak-server serve | migrate | compact`. Every option can also come from a `CLOAK_…`
/// environment variable (named next to it in `--help`); the command line wins. Started from
/// `main.swift`.
struct CloakServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-server",
        abstract: "The Cloak sync server: stores and relays end-to-end encrypted change sets.",
        subcommands: [Serve.self, Migrate.self, Compact.self],
        defaultSubcommand: Serve.self)
}

/// Reads a `CLOAK_…` environment variable.
func environment(_ name: String) -> String? {
    ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
}

struct StoreOptions: ParsableArguments {
    @Option(help: "Where data lives: sqlite:PATH, postgres://user:password@host:port/db or memory: (CLOAK_DATABASE).")
    var database: String = environment("CLOAK_DATABASE") ?? "sqlite:./cloak-data/cloak.sqlite"

    @Option(help: "trace, debug, info, notice, warning, error or critical (CLOAK_LOG_LEVEL).")
    var logLevel: String = environment("CLOAK_LOG_LEVEL") ?? "info"

    /// Bootstraps logging to standard error and returns the server's logger.
    func logger() throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown log level \(logLevel)")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "cloak-server")
        logger.logLevel = level
        return logger
    }

    /// Opens and migrates the store.
    func openStore(_ logger: Logger) async throws -> any ServerStore {
        let location = try StoreLocation(parsing: database)
        logger.info("opening store", metadata: ["location": "\(location)"])
        let store = try location.open(logger: logger)
        try await store.migrate()
        return store
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve /v1/sync, /healthz, /readyz and /metrics.")

    @Option(help: "Interface to bind (CLOAK_HOST).")
    var host: String = environment("CLOAK_HOST") ?? "127.0.0.1"

    @Option(help: "Port; 0 picks a free one (CLOAK_PORT).")
    var port: Int = environment("CLOAK_PORT").flatMap(Int.init) ?? 8080

    @Option(help: "PEM certificate chain for TLS (CLOAK_TLS_CERT); needs --tls-key. Empty: plain ws://.")
    var tlsCert: String = environment("CLOAK_TLS_CERT") ?? ""

    @Option(help: "PEM private key for TLS (CLOAK_TLS_KEY).")
    var tlsKey: String = environment("CLOAK_TLS_KEY") ?? ""

    @OptionGroup var store: StoreOptions
    @OptionGroup var limits: LimitOptions

    func validate() throws {
        guard tlsCert.isEmpty == tlsKey.isEmpty else { throw ValidationError("--tls-cert and --tls-key go together") }
    }

    func run() async throws {
        let logger = try store.logger()
        let database = try await store.openStore(logger)
        var configuration = HTTPServerConfiguration(host: host, port: port, sync: limits.configuration)
        // Several cloak-server processes may share one PostgreSQL database (DESIGN.md "Server").
        configuration.sync.sharedStore = database is PostgresServerStore
        if configuration.sync.sharedStore {
            logger.info("shared database: other cloak-server processes may serve the same accounts (LISTEN cloak_commits)")
        }
        if !tlsCert.isEmpty { configuration.tls = (tlsCert, tlsKey) }
        let tls = !tlsCert.isEmpty
        let server = CloakHTTPServer(configuration: configuration, store: database, logger: logger)
        let host = host
        let group = ServiceGroup(
            services: try server.services { port in
                // A stable line on stdout: scripts and tests read the bound port from it.
                FileHandle.standardOutput.write(Data("cloak-server listening on \(host):\(port)\n".utf8))
                logger.info("listening", metadata: ["host": "\(host)", "port": "\(port)", "tls": "\(tls)"])
            },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        do {
            try await group.run()
        } catch {
            await database.close()
            throw error
        }
        await database.close()
        logger.info("stopped")
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the database schema, then exit.")

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let logger = try store.logger()
        let database = try await store.openStore(logger)
        await database.close()
        print("cloak-server: schema is current")
    }
}

struct Compact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop change sets covered by snapshots that every active device has acknowledged.")

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let logger = try store.logger()
        let database = try await store.openStore(logger)
        let nowMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        do {
            let report = try await Compactor.run(store: database, nowMs: nowMs, logger: logger)
            print(
                "cloak-server: compacted \(report.accounts) accounts: dropped \(report.changeSetsDropped) change sets"
                    + " (\(report.bytesDropped) bytes), purged \(report.mailboxesPurged) expired mailboxes")
        } catch {
            await database.close()
            throw error
        }
        await database.close()
    }
}
