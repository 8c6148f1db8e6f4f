import ArgumentParser
import CloakClient
import CloakProtocol

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a new account with this device (makes --dir).")
    @OptionGroup var options: DeviceOptions

    func run() async throws {
        let session = await Session.open(options, creating: true)
        let client = session.client
        do { try await session.withProgress { try await client.createAccount() } } catch { await session.fail(error) }
        let account = await client.accountID
        print("account \(account?.hex ?? "?") created; this device is \(client.deviceID.hex)")
        await session.finish()
    }
}
