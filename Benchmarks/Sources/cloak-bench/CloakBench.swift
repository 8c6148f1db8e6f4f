import ArgumentParser

/// `cloak-bench SUITE [--json]`: one entry point for every benchmark suite. Run it through
/// `scripts/bench`, which builds this package in release mode first.
@main
struct CloakBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-bench",
        abstract: "Cloak benchmarks (release build). Prints a table, or one JSON object with --json.",
        subcommands: [CryptoSuite.self, CRDTSuite.self, ClientSuite.self, ServerSuite.self]
    )
}

/// Options every suite shares.
struct SuiteOptions: ParsableArguments {
    @Flag(help: "Print one JSON object as the last line instead of a table.")
    var json = false
}
