import ArgumentParser
import CloakSimulation

/// `cloak-sim`: the Cloak simulator. Modes grow here: `demo` drives three devices against a
/// running server.
@main
struct CloakSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-sim", abstract: "Cloak's multi-device simulator.", subcommands: [RunCommand.self, DemoCommand.self])
}
