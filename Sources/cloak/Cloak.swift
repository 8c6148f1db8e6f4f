import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import CloakTransport
import Foundation
import Logging

/// `cloak`: try Cloak from a terminal. Each device keeps its state in its own directory
/// (`--dir`), so two terminals with two directories are two devices of one account.
@main
struct Cloak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak",
        abstract: "An end-to-end encrypted conversation store: one directory is one device.",
        discussion: """
            Example, two devices in two terminals:
              cloak init --dir ./phone
              cloak link --dir ./laptop            # prints an invitation, then waits
              cloak accept --dir ./phone cloak1:…  # both print the same 6 digits
              cloak send --dir ./phone --new "Trip" "Where to in May?"
              cloak show --dir ./laptop
              cloak assistant grant --dir ./phone cloak-assistant1:… --conversation <id> --days 7
            Exit codes: 0 success, 1 usage or local error, 2 server or network, 3 security refusal.
            """,
        subcommands: [Init.self, Link.self, Accept.self, Devices.self, Remove.self, RecoverySetup.self, Recover.self,
                      Send.self, Show.self, Sync.self, Assistant.self]
    )
}
