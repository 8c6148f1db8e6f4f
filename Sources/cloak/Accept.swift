import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Accept: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accept a new device's invitation: compare the codes, then add it.",
        discussion: "Nothing is added unless the codes match and the user says so on both devices.")
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Say yes without asking to compare the 6 digits (scripts only).")
    var yes = false
    @Argument(help: "The invitation text the new device printed (cloak1:…); read from standard input if omitted.")
    var invitation: String?

    func run() async throws {
        let text = invitation ?? readLine() ?? ""
        try await withClient(options) { client in
            let offer = try await client.acceptLink(text)
            print("Security code: \(offer.shortAuthenticationString)")
            let match = SecretInput.confirm("Does the new device show the same code?", assumeYes: yes)
            if match { print("Waiting for the new device to confirm…") }
            fflush(nil)
            try await client.completeLink(offer, codesMatch: match)
            guard match else { throw CLIError.failed("link cancelled: nothing was added; the new device was told") }
            print("added device \(offer.newDevice.hex); it can now read the account")
        }
    }
}
