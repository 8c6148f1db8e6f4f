import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct RecoverySetup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery-setup", abstract: "Set recovery words (printed once) or a recovery passphrase.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Use this passphrase instead of generated words; - reads it from standard input.")
    var passphrase: String?

    func run() async throws {
        try await withClient(options) { client in
            if let passphrase = try Secrets.resolve(passphrase, prompt: "Recovery passphrase") {
                try await client.setUpRecoveryPassphrase(passphrase)
                print("recovery passphrase set; you will also need the account id: \(await client.accountID?.hex ?? "")")
            } else {
                let words = try await client.setUpRecoveryWords()
                print("Write these 12 words down; they restore the account on a new device:\n\n  \(words)\n")
            }
        }
    }
}
