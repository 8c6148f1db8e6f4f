import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a device (a lost phone) and rotate the keys.")
    @OptionGroup var options: DeviceOptions
    @Argument(help: "The device id (hex, as `cloak devices` prints it).")
    var device: String

    func run() async throws {
        guard let bytes = try? Hex.decode(device), let id = try? DeviceID(validating: bytes, field: "device") else {
            throw CLIError.usage("a device id is 32 hex digits")
        }
        try await withClient(options) { client in
            try await client.removeDevice(id)
            print("removed \(id.hex); new messages use a key it never receives")
        }
    }
}
