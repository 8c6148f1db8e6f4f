import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import CloakTransport
import Foundation
import Logging

/// `cloak`: try Cloak from a terminal. Each device keeps its state in its own directory
/// (`--dir`), so two terminals with two directories are two devices of one account.
@main
struct Cloak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak",
        abstract: "An end-to-end encrypted conversation store: one directory is one device.",
        discussion: """
            Example, two devices in two terminals:
              cloak init --dir ./phone
              cloak link --dir ./laptop            # prints an invitation, then waits
              cloak accept --dir ./phone cloak1:…  # both print the same 6 digits
              cloak send --dir ./phone --new "Trip" "Where to in May?"
              cloak show --dir ./laptop
            Exit codes: 0 success, 1 usage or local error, 2 server or network, 3 security refusal.
            """,
        subcommands: [Init.self, Link.self, Accept.self, Devices.self, Remove.self, RecoverySetup.self, Recover.self,
                      Send.self, Show.self, Sync.self]
    )
}

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

/// A command-line failure with its exit code.
enum CLIError: Error, CustomStringConvertible {
    case usage(String)
    case failed(String)

    var description: String {
        switch self {
        case .usage(let text), .failed(let text): text
        }
    }
}

/// Runs `body` with an open client, syncing first when `sync` is set; maps errors to messages
/// and exit codes.
func withClient(_ options: DeviceOptions, sync: Bool = true, _ body: (CloakClient) async throws -> Void) async throws {
    let client: CloakClient
    do { client = try options.open() } catch { fail(error) }
    do {
        if sync {
            await client.startSync()
            if !(await client.waitUntilSynced(timeout: .seconds(20))) {
                FileHandle.standardError.write(Data("cloak: could not finish syncing with \(options.server)\n".utf8))
            }
        }
        try await body(client)
        if sync { _ = await client.waitUntilSynced(timeout: .seconds(20)) }
        for event in try await client.recordedSecurityEvents().suffix(5) where sync {
            FileHandle.standardError.write(Data("cloak: \(EventLines.sentence(event))\n".utf8))
        }
        try await client.close()
    } catch {
        try? await client.close()
        fail(error)
    }
}

func fail(_ error: any Error) -> Never {
    let (message, code): (String, Int32) =
        switch error {
        case let error as CLIError: (error.description, 1)
        case let error as ClientError: describe(error)
        default: ("\(error)", 1)
        }
    FileHandle.standardError.write(Data("cloak: \(message)\n".utf8))
    exit(code)
}

func describe(_ error: ClientError) -> (String, Int32) {
    switch error {
    case .noAccount: ("this device has no account yet: run `cloak init`, `cloak link` or `cloak recover`", 1)
    case .alreadyInitialized: ("this device already belongs to an account", 1)
    case .server(let reason): ("the server refused: \(reason.message)", 2)
    case .notConnected: ("cannot reach the server", 2)
    case .timeout: ("the server did not answer in time", 2)
    case .pairing(.expired): ("that invitation has expired: run `cloak link` again on the new device", 1)
    case .pairing(.malformedPayload): ("that is not a Cloak invitation (it starts with cloak1:)", 1)
    case .pairing(.typo): ("that invitation has a typo (its checksum does not match): copy it again, character by character", 1)
    case .linkDeclined: ("the other device said the codes do not match: nothing was added; start again with `cloak link`", 3)
    case .weakPassphrase, .recoveryAlreadySet, .recoveryLocked, .recoveryUnavailable, .recoveryInterrupted, .noRecoveryKey:
        EventLines.describeRecovery(error)
    case .pairingReused: ("that invitation was used already: its device is in the account", 1)
    case .pairingNotCompleted: ("no device accepted the invitation before it expired", 2)
    case .wrongRecoverySecret: ("no account uses this recovery secret, or the passphrase is wrong", 3)
    case .recoveryWords(let reason): ("recovery words rejected: \(reason)", 1)
    case .deviceLog(let reason): ("the server's device log was refused: \(reason)", 3)
    case .removedFromAccount: ("this device was removed from its account", 3)
    default: ("\(error)", 1)
    }
}

func parseConversation(_ text: String) throws -> ConversationID {
    guard let bytes = try? Hex.decode(text), let id = try? ConversationID(validating: bytes, field: "conversation")
    else { throw CLIError.usage("a conversation id is 32 hex digits") }
    return id
}
