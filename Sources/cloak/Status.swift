import ArgumentParser
import CloakClient
import CloakProtocol

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sync, then print what this device can truthfully say about its sync.",
        discussion: """
            Connection and since when, local edits the server has not acknowledged, how far the device \
            processed the server's stream, for each device of the account how many of its change sets \
            are verified complete here (and known missing) and when it was last heard of, and the open \
            security incidents. Exit code 0 only when up to date.
            """)
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Do not connect: print what the device knows now.")
    var offline = false

    func run() async throws {
        let session = await Session.open(options)
        let client = session.client
        var problem: CLIError?
        if !offline {
            let outcome = await session.sync(for: options.wait)
            if case .synced = outcome {} else { problem = await session.problem(outcome) }
        }
        let status = await client.syncStatus()
        print("device \(client.deviceID.hex) (\(options.dir)) of account \(await client.accountID?.hex ?? "?")")
        print("connection: \(await connection(status, session))")
        print("local edits the server has not acknowledged: \(status.unacknowledgedEdits)")
        let pushed = status.acknowledgedThrough > 0 ? "; its pushes this run acknowledged through \(status.acknowledgedThrough)" : ""
        print("server stream processed through cursor \(status.processedThrough)\(pushed)")
        print("devices:")
        for member in status.members {
            let missing = member.knownMissing > 0 ? ", \(member.knownMissing) known to exist and missing" : ""
            let heard = member.lastHeardAt.map { "last heard \(Dates.format(millis: $0))" } ?? "not heard from yet"
            let this = member.isThisDevice ? "  (this device)" : ""
            print("  \(member.device.hex)\(this): \(member.verifiedChangeSets) change sets verified complete\(missing); \(heard)")
        }
        if status.incidents.isEmpty {
            print("open incidents: none")
        } else {
            print("open incidents:")
            for incident in status.incidents {
                print("  since \(Dates.format(millis: incident.openedAt)): \(incident.detail)")
            }
        }
        if offline, !status.incidents.isEmpty {
            problem = .security("\(status.incidents.count) security incidents are open")
        }
        print("state: \(problem == nil ? (offline ? "not connected (--offline)" : "up to date") : "NOT up to date")")
        if let problem { await session.fail(problem) }
        await session.finish()
    }

    private func connection(_ status: SyncStatus, _ session: Session) async -> String {
        switch status.connection {
        case .live:
            let since = status.liveSince.map { " since \(Dates.format(millis: $0))" } ?? ""
            return "live\(since)"
        case .catchingUp: return "catching up"
        case .connecting: return "connecting"
        case .refused(let reason): return "refused by the server: \(reason)"
        case .offline(let retry):
            if offline { return "not connected (--offline)" }
            let failure = await session.client.lastConnectionFailure.map { ": \($0)" } ?? ""
            return "offline\(failure)\(retry.map { "; next attempt at \(Dates.format(millis: $0))" } ?? "")"
        }
    }
}
