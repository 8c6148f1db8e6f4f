import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a new account with this device.")
    @OptionGroup var options: DeviceOptions

    func run() async throws {
        try await withClient(options, sync: false) { client in
            try await client.createAccount()
            let account = await client.accountID
            print("account \(account?.hex ?? "?") created; this device is \(client.deviceID.hex)")
        }
    }
}
