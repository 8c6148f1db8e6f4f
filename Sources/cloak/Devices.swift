import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Devices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the account's devices.")
    @OptionGroup var options: DeviceOptions

    func run() async throws {
        try await withClient(options) { client in
            for device in try await client.devices() {
                let marks = [device.isThisDevice ? "this device" : nil, device.isActive ? nil : "removed"]
                    .compactMap { $0 }.joined(separator: ", ")
                print("\(device.id.hex)  added \(device.addedAt)\(marks.isEmpty ? "" : "  (\(marks))")")
            }
        }
    }
}
