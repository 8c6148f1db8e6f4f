import CloakClient
import CloakProtocol
import CloakTransport
import Foundation

/// A command-line failure: a sentence naming the thing (a path, an id, a URL) and what to do,
/// and the exit code (`cloak --help` lists them).
enum CLIError: Error, CustomStringConvertible {
    /// The command line is wrong (exit 64).
    case usage(String)
    /// A local problem: no device at `--dir`, an unknown id (exit 1).
    case failed(String)
    /// The server could not be reached in time, or refused (exit 2).
    case server(String)
    /// A security refusal: this device was removed, a wrong recovery secret (exit 3).
    case security(String)

    var description: String {
        switch self {
        case .usage(let text), .failed(let text), .server(let text), .security(let text): text
        }
    }

    var exitCode: Int32 {
        switch self {
        case .usage: 64
        case .failed: 1
        case .server: 2
        case .security: 3
        }
    }
}

/// What a failure message may name: the device directory, the server, why the last connection
/// attempt failed, and this device's removal if it learned of it.
struct FailureContext {
    let directory: String
    let server: String
    var connectionFailure: (any Error)?
    var removal: DeviceRemoval?
}

/// Prints the failure as one `cloak: …` line and exits with its code.
func terminate(_ error: CLIError) -> Never {
    FileHandle.standardError.write(Data("cloak: \(error.description)\n".utf8))
    exit(error.exitCode)
}

extension CLIError {
    /// The sentence for a client error, in the words of this command line.
    init(_ error: ClientError, _ context: FailureContext) {
        let dir = context.directory
        switch error {
        case .noAccount:
            self = .failed(
                "the device at \(dir) has no account yet: run `cloak init --dir \(dir)` to start one, "
                    + "`cloak link --dir \(dir)` to join one, or `cloak recover --dir \(dir)`")
        case .alreadyInitialized:
            self = .failed("the device at \(dir) already belongs to an account: give another --dir for a new device")
        case .server(let refusal):
            self = Self.refused(refusal, context)
        case .notConnected, .timeout:
            self = .server(Self.unreachable(context, timedOut: error == .timeout))
        case .unknownConversation(let id):
            self = .failed("there is no conversation \(id.hex) on the device at \(dir): `cloak show --dir \(dir)` lists them")
        case .unknownDevice(let id):
            self = .failed("\(id.hex) is not an active device of this account: `cloak devices --dir \(dir)` lists them")
        case .removedFromAccount:
            self = .security(Self.removed(context))
        case .deviceLog, .crypto, .wrongRecoverySecret:
            self = .security(error.description)
        case .pairingNotCompleted, .missingEpochKey:
            self = .server(error.description)
        case .storage(let reason):
            self = .failed("the device's files at \(dir) could not be used (\(reason)): check the directory's permissions and free space")
        case .invalidEdit(let reason):
            self = .failed(reason)
        case .pairing, .pairingReused, .recoveryWords, .noRecoveryKey, .weakPassphrase:
            self = .failed(error.description)
        case .recoveryAlreadySet:
            self = .failed(
                "the account already has a recovery secret: `cloak recovery-setup --dir \(dir)` asks before it replaces it "
                    + "(the old secret stops working)")
        case .linkDeclined:
            self = .security(
                "the other device said the codes do not match: nothing was added; if you did not mistype them, someone may be "
                    + "trying to join; start again with `cloak link --dir \(dir)`")
        case .recoveryLocked, .recoveryUnavailable:
            self = .server("the server at \(context.server) answered: \(error.description)")
        case .recoveryInterrupted:
            self = .server("the recovery stopped before this device was added: run `cloak recover --dir \(dir)` again")
        case .assistantInvitation, .notPermitted:
            self = .failed(error.description)
        case .unknownAssistant(let id):
            self = .failed("\(id.hex) is not an active assistant of this account: `cloak assistant list --dir \(dir)` lists them")
        case .assistantNotGranted:
            self = .security(error.description)
        }
    }

    /// The server could not be reached (or stopped answering): why, and what to do.
    static func unreachable(_ context: FailureContext, timedOut: Bool = false) -> String {
        let server = context.server
        guard let failure = context.connectionFailure else {
            return timedOut
                ? "the server at \(server) stopped answering: check that it is running, then try again"
                : "cannot reach the server at \(server), or the connection dropped: check that it is running, then try again"
        }
        var advice = "start it (`cloak-server serve --create`) or give the right --server"
        if let transport = failure as? TransportError {
            switch transport.kind {
            case .untrustedCertificate: advice = "if the server's certificate comes from a private authority, give that authority's certificate with --ca-file"
            case .tls, .upgradeRefused, .handshakeTimeout: advice = "check the --server URL"
            case .unknownHost: advice = "check the host name in --server"
            default: break
            }
        }
        return "cannot reach the server at \(server): \(failure) — \(advice)"
    }

    /// The removal sentence: when, by which device, and what is left to do.
    static func removed(_ context: FailureContext) -> String {
        let when = context.removal.map { " on \(Dates.format(millis: $0.at)) by device \($0.by.hex)" } ?? ""
        return "this device (\(context.directory)) was removed from the account\(when): its keys are wiped and it can no "
            + "longer sync or write; to use this computer again, link a new device in another directory (`cloak link --dir …`)"
    }

    private static func refused(_ refusal: ProtocolError, _ context: FailureContext) -> CLIError {
        let server = context.server
        switch refusal {
        case .deviceNotActive: return .security(removed(context))
        case .unknownAccount:
            return .server("the server at \(server) does not know this device's account: is it the server the account was made on?")
        case .accountBlocked:
            return .server("the operator of \(server) blocked this account: ask them why")
        default:
            return .server("the server at \(server) refused: \(refusal.message)")
        }
    }
}
