import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restore the account on this fresh device.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "The 12 recovery words; - (or leaving both --words and --account out) reads them from standard input.")
    var words: String?
    @Option(name: .long, help: "The account id (with --passphrase).")
    var account: String?
    @Option(name: .long, help: "The recovery passphrase; - (or leaving it out with --account) reads it from standard input.")
    var passphrase: String?

    func run() async throws {
        try await withClient(options, creating: true, sync: false) { client in
            let words = try words.map { $0 == "-" ? try Secrets.read(prompt: "Recovery words") : $0 }
                ?? (account == nil ? try Secrets.read(prompt: "Recovery words") : nil)
            let passphrase = try passphrase.map { $0 == "-" ? try Secrets.read(prompt: "Recovery passphrase") : $0 }
                ?? (account != nil ? try Secrets.read(prompt: "Recovery passphrase") : nil)
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
