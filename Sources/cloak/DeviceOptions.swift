import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import CloakTransport
import Foundation
import Logging

/// Options every command takes.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "This device's state directory (env CLOAK_DIR).")
    var dir: String = ProcessInfo.processInfo.environment["CLOAK_DIR"] ?? "./cloak-device"

    @Option(name: .long, help: "Sync server WebSocket URL (env CLOAK_SERVER).")
    var server: String = ProcessInfo.processInfo.environment["CLOAK_SERVER"] ?? "ws://127.0.0.1:8080/v1/sync"

    @Flag(name: .long, help: "Log sync details to stderr.")
    var verbose = false

    func open() throws -> CloakClient {
        guard let url = URL(string: server), url.scheme == "ws" || url.scheme == "wss" else {
            throw CLIError.usage("--server must be a ws:// or wss:// URL")
        }
        var logger = Logger(label: "cloak")
        logger.logLevel = verbose ? .debug : .warning
        return try CloakClient.open(
            directory: URL(fileURLWithPath: dir), server: url, transport: WebSocketTransport(logger: logger),
            logger: logger)
    }
}
