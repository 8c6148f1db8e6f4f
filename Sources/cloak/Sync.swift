import ArgumentParser
import CloakClient

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stay connected and sync for a while.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Seconds to stay connected.")
    var seconds: Int = 10

    func run() async throws {
        let session = await Session.open(options)
        await session.requireSync(for: options.wait)
        try? await Task.sleep(for: .seconds(seconds))
        await session.requireSync(for: options.wait)
        await session.finish()
    }
}
