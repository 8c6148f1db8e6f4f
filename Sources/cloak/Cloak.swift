import ArgumentParser
import CloakClient
import CloakProtocol

/// `cloak`: try Cloak from a terminal. Each device keeps its state in its own directory
/// (`--dir`), so two terminals with two directories are two devices of one account.
@main
struct Cloak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak",
        abstract: "An end-to-end encrypted conversation store: one directory is one device.",
        discussion: """
            Start a server first (cloak-server serve --create), then, in two terminals:
              cloak init --dir ./phone
              cloak link --dir ./laptop            # prints an invitation, then waits
              cloak accept --dir ./phone cloak1:…  # both print the same 6 digits
              cloak send --dir ./phone --new "Trip" "Where to in May?"
              cloak show --dir ./laptop
              cloak assistant grant --dir ./phone cloak-assistant1:… --conversation <id> --days 7
            Only init, link and recover create a device; every other command needs one at --dir.
            Exit codes: 0 success; 1 a local problem (no device at --dir, an unknown id); 2 the server
            could not be reached in time, or refused; 3 a security event fired during the command, or
            a security refusal (this device was removed, a wrong recovery secret); 64 a mistyped
            command line.
            """,
        version: "cloak \(CloakClient.version) (protocol \(ProtocolVersion.current))",
        subcommands: [Init.self, Link.self, Accept.self, Devices.self, Remove.self, RecoverySetup.self, Recover.self,
                      Send.self, Show.self, Status.self, Sync.self, Assistant.self]
    )
}
