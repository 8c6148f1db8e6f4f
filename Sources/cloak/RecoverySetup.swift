import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct RecoverySetup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery-setup", abstract: "Set recovery words (printed once) or a recovery passphrase.",
        discussion: """
            The passphrase is read from the terminal without echo (or from standard input), never from \
            the command line, and must be strong (about 60 bits: five random words pass). Replacing an \
            existing secret starts a new key epoch and the old one stops working; you are asked first.
            """)
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Set a passphrase (prompted) instead of generated words.")
    var passphrase = false
    @Flag(name: .long, help: "Replace an existing recovery secret without asking (scripts only).")
    var replace = false

    func run() async throws {
        try await withClient(options) { client in
            var replacing = false
            if await client.recoveryIsSet {
                print("This account already has a recovery secret. Replacing it starts a new key epoch: the old words or")
                print("passphrase stop working and open nothing written from now on.")
                guard SecretInput.confirm("Replace it?", assumeYes: replace) else {
                    throw CLIError.failed("nothing changed: the existing recovery secret stays")
                }
                replacing = true
            }
            if passphrase {
                try await client.setUpRecoveryPassphrase(try SecretInput.newPassphrase(), replacing: replacing)
                print("recovery passphrase set; you will also need the account id: \(await client.accountID?.hex ?? "")")
            } else {
                let words = try await client.setUpRecoveryWords(replacing: replacing)
                print("Write these 12 words down; they restore the account on a new device:\n\n  \(words)\n")
            }
        }
    }
}
