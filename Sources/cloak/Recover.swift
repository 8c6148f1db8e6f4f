import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restore the account on this fresh device.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "The 12 recovery words.")
    var words: String?
    @Option(name: .long, help: "The account id (with --passphrase).")
    var account: String?
    @Option(name: .long, help: "The recovery passphrase.")
    var passphrase: String?

    func run() async throws {
        try await withClient(options, sync: false) { client in
            if let words {
                try await client.recover(words: words)
            } else if let account, let passphrase {
                guard let bytes = try? Hex.decode(account), let id = try? AccountID(validating: bytes, field: "account")
                else { throw CLIError.usage("an account id is 64 hex digits") }
                try await client.recover(account: id, passphrase: passphrase)
            } else {
                throw CLIError.usage("give --words, or --account and --passphrase")
            }
            await client.startSync()
            _ = await client.waitUntilSynced(timeout: .seconds(60))
            print("recovered; this device is \(client.deviceID.hex); \(await client.conversations().count) conversations")
        }
    }
}
