import ArgumentParser
import CloakClient
import CloakProtocol

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a device (a lost phone) and rotate the keys.")
    @OptionGroup var options: DeviceOptions
    @Argument(help: "The device id (hex, as `cloak devices` prints it).")
    var device: String

    func run() async throws {
        let id: DeviceID
        do { id = try parseDevice(device) } catch { terminate(error) }
        let session = await Session.open(options)
        await session.requireSync(for: options.wait)
        do { try await session.withProgress { try await session.client.removeDevice(id) } } catch { await session.fail(error) }
        await session.requireSync(for: options.wait)
        print("removed \(id.hex); new messages use a key it never receives")
        await session.finish()
    }
}
