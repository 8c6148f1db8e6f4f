import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Link: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Link this new device: prints an invitation to enter on an existing device, then waits.",
        discussion: """
            Both devices then show a 6-digit code. Nothing joins unless the user says the codes match on \
            both devices. Run it again after an interruption: an unfinished invitation resumes.
            """)
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Say yes without asking to compare the 6 digits (scripts only).")
    var yes = false

    func run() async throws {
        try await withClient(options, creating: true, sync: false) { client in
            let invitation = try await client.beginLink()
            // The other device's directory is not known here: DIR stands for it. The server is
            // named when it is not the default, so the line runs as printed once DIR is filled in.
            let server = options.server == DeviceOptions.defaultServer ? "" : " --server \(options.server)"
            print("On a device already in the account, run (DIR is that device's --dir):\n\n  cloak accept --dir DIR\(server) \(invitation.text)\n")
            print("Waiting (the invitation expires in 10 minutes)…")
            fflush(nil)  // all streams: the other terminal (or a script reading a pipe) needs it now
            let pending = try await client.awaitLink(invitation)
            print("Security code: \(pending.shortAuthenticationString)")
            let match = SecretInput.confirm("Does the other device show the same code?", assumeYes: yes)
            if !match { print("Telling the other device…") } else { print("Waiting for the other device to confirm…") }
            fflush(nil)
            try await client.confirmLink(pending, codesMatch: match)
            guard match else {
                throw CLIError.failed("link cancelled: nothing joined; run `cloak link` again for a new invitation")
            }
            await client.startSync()
            _ = await client.waitUntilSynced(timeout: .seconds(60))
            print("linked to account \(pending.accountID.hex); \(await client.conversations().count) conversations")
        }
    }
}
