import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore the account on this fresh device.",
        discussion: """
            The words or the passphrase are read from the terminal without echo (or from standard input), \
            never from the command line. Every passphrase attempt counts with the server, which tells the \
            account's devices and locks recovery after too many. Run it again after an interruption.
            """)
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Recover with the 12 recovery words (prompted).")
    var words = false
    @Option(name: .long, help: "The account id (with --passphrase).")
    var account: String?
    @Flag(name: .long, help: "Recover with the recovery passphrase (prompted; needs --account).")
    var passphrase = false

    func run() async throws {
        try await withClient(options, creating: true, sync: false) { client in
            if await client.hasInterruptedRecovery {
                print("Finishing an interrupted recovery…")
                try await client.resumeRecovery()
            } else if words {
                try await client.recover(words: try SecretInput.line(prompt: "Recovery words: "))
            } else if passphrase, let account {
                guard let bytes = try? Hex.decode(account), let id = try? AccountID(validating: bytes, field: "account")
                else { throw CLIError.usage("an account id is 64 hex digits") }
                try await client.recover(account: id, passphrase: try SecretInput.line(prompt: "Recovery passphrase: "))
            } else {
                throw CLIError.usage("give --words, or --account ID --passphrase (the secret is asked for, not an argument)")
            }
            await client.startSync()
            _ = await client.waitUntilSynced(timeout: .seconds(60))
            print("recovered; this device is \(client.deviceID.hex); \(await client.conversations().count) conversations")
        }
    }
}
