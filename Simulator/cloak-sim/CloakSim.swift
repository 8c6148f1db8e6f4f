import ArgumentParser
import CloakSimulation

/// `cloak-sim`: the Cloak simulator. `run` is the deterministic mode (seeded, in one process),
/// `live` loads running servers with real devices, `demo` drives three devices against one.
@main
struct CloakSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-sim", abstract: "Cloak's multi-device simulator.", subcommands: [RunCommand.self, LiveCommand.self, DemoCommand.self])
}
