import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Accept: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Accept a new device's invitation.")
    @OptionGroup var options: DeviceOptions
    @Argument(help: "The invitation text the new device printed (cloak1:…).")
    var invitation: String

    func run() async throws {
        try await withClient(options) { client in
            let code = try await client.acceptLink(invitation)
            print("Security code: \(code) — check that the new device shows the same code.")
        }
    }
}
