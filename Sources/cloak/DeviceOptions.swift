import ArgumentParser
import CloakClient
import CloakTransport
import Foundation
import Logging

/// Options every command takes.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "This device's state directory (env CLOAK_DIR).")
    var dir: String = ProcessInfo.processInfo.environment["CLOAK_DIR"] ?? "./cloak-device"

    @Option(name: .long, help: "Sync server WebSocket URL (env CLOAK_SERVER).")
    var server: String = ProcessInfo.processInfo.environment["CLOAK_SERVER"] ?? Self.defaultServer

    /// The server a command uses without `--server` or `CLOAK_SERVER`.
    static let defaultServer = "ws://127.0.0.1:8080/v1/sync"

    @Option(
        name: .customLong("ca-file"),
        help: ArgumentHelp(
            "For a wss:// server whose certificate a private authority signed: that authority's PEM certificate, "
                + "trusted instead of the system's (env CLOAK_CA_FILE)."))
    var caFile: String?

    /// `--ca-file`, or else `CLOAK_CA_FILE`.
    var caFilePath: String? { caFile ?? ProcessInfo.processInfo.environment["CLOAK_CA_FILE"] }

    @Option(name: .long, help: "Seconds to wait for the server before giving up (env CLOAK_TIMEOUT).")
    var timeout: Double = ProcessInfo.processInfo.environment["CLOAK_TIMEOUT"].flatMap(Double.init) ?? 15

    @Flag(name: .long, help: "Log sync details to stderr.")
    var verbose = false

    func validate() throws {
        guard timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout must be a number of seconds above 0") }
        do { _ = try serverURL() } catch { throw ValidationError(error.description) }
    }

    /// The server URL, checked.
    func serverURL() throws(CLIError) -> URL {
        guard let url = URL(string: server), url.scheme == "ws" || url.scheme == "wss", url.host?.isEmpty == false else {
            throw .usage("--server \(server) is not a server URL: it looks like ws://HOST:PORT/v1/sync (or wss:// with TLS)")
        }
        return url
    }

    /// How long to wait for the server.
    var wait: Duration { .milliseconds(Int64(timeout * 1000)) }

    /// The transport: the system's certificate authorities, or only the one in `--ca-file`.
    func transport(logger: Logger) throws(CLIError) -> WebSocketTransport {
        guard let caFile = caFilePath else { return WebSocketTransport(logger: logger) }
        do { return try WebSocketTransport(caFile: caFile, logger: logger) } catch {
            throw .usage("--ca-file: \(error.description)")
        }
    }

    /// A command-line tool's client settings: reconnect soon (a person is waiting) and give up
    /// on an unanswered request within `--timeout`.
    var clientConfiguration: ClientConfiguration {
        var configuration = ClientConfiguration()
        configuration.reconnectMinMillis = 200
        configuration.reconnectMaxMillis = 2_000
        configuration.requestTimeoutMillis = UInt64(max(1_000, min(30_000, timeout * 1000)))
        return configuration
    }

    /// A logger at error level, or debug with `--verbose`.
    var logger: Logger {
        var logger = Logger(label: "cloak")
        // The library logs each security event at warning; the CLI prints them itself, once.
        logger.logLevel = verbose ? .debug : .error
        return logger
    }
}
