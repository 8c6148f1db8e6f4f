import ArgumentParser
import CloakClient
import CloakProtocol

struct Devices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sync, then list the account's devices.")
    @OptionGroup var options: DeviceOptions

    func run() async throws {
        let session = await Session.open(options)
        let outcome = await session.sync(for: options.wait)
        var problem: CLIError?
        switch outcome {
        case .synced: break
        case .gaveUp: problem = await session.problem(outcome)
        case .removed, .refused: await session.fail(await session.problem(outcome))
        }
        if let problem { note("\(problem.description); the list below is this device's copy, which may be out of date") }
        let devices: [DeviceInfo]
        do { devices = try await session.client.devices() } catch { await session.fail(error) }
        for device in devices {
            var marks: [String] = []
            if device.isThisDevice { marks.append("this device") }
            if !device.isActive {
                let when = device.removedAt.map { " \(Dates.format(millis: $0))" } ?? ""
                marks.append("removed\(when)\(device.removedBy.map { " by \($0.hex)" } ?? "")")
            }
            print("\(device.id.hex)  added \(Dates.format(millis: device.addedAt))\(marks.isEmpty ? "" : "  (\(marks.joined(separator: ", ")))")")
        }
        if let problem { await session.fail(problem) }
        await session.finish()
    }
}
