import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import CloakTransport
import Foundation
import Logging

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
    case .assistantInvitation(.checksumMismatch): ("that assistant invitation was mistyped: copy it again from `cloak-agent init`", 1)
    case .assistantInvitation(.malformed): ("that is not an assistant invitation (it starts with cloak-assistant1:)", 1)
    case .unknownAssistant(let id): ("no active assistant \(id.hex) in this account: see `cloak assistant list`", 1)
    case .notPermitted(let why): ("not allowed: \(why)", 1)
    default: ("\(error)", 1)
    }
}

func parseConversation(_ text: String) throws -> ConversationID {
    guard let bytes = try? Hex.decode(text), let id = try? ConversationID(validating: bytes, field: "conversation")
    else { throw CLIError.usage("a conversation id is 32 hex digits") }
    return id
}
