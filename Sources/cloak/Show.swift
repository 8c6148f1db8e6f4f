import ArgumentParser
import CloakCRDT
import CloakClient
import CloakProtocol

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sync, then print conversations (the active branch of each).")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Only this conversation (hex id).")
    var conversation: String?

    func run() async throws {
        var only: ConversationID?
        if let conversation {
            do { only = try parseConversation(conversation) } catch { terminate(error) }
        }
        let session = await Session.open(options)
        let client = session.client
        let outcome = await session.sync(for: options.wait)
        var problem: CLIError?
        switch outcome {
        case .synced: break
        case .removed, .refused: await session.fail(await session.problem(outcome))
        case .gaveUp: problem = await session.problem(outcome)
        }
        if let only, await client.conversation(only) == nil { await session.fail(ClientError.unknownConversation(only)) }
        if let problem { note("\(problem.description); what follows is this device's copy, which may be out of date") }
        for summary in await client.conversations() where only == nil || summary.id == only {
            print("== \(summary.title ?? "(untitled)")  [\(summary.id.hex)]")
            for message in await client.conversation(summary.id)?.messages ?? [] where !message.isDeleted {
                let branch = message.siblingCount > 1 ? " (\(message.siblingIndex + 1)/\(message.siblingCount))" : ""
                let reactions = message.reactions.map(\.emoji).joined()
                print("  \(message.role): \(message.text)\(branch)\(reactions.isEmpty ? "" : "  \(reactions)")")
            }
        }
        if let problem { await session.fail(problem) }
        await session.finish()
    }
}
