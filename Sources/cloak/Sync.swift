import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stay connected and sync for a while.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Seconds to stay connected.")
    var seconds: Int = 10

    func run() async throws {
        try await withClient(options) { _ in
            try await Task.sleep(for: .seconds(seconds))
        }
    }
}
