import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sync, then print conversations.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Only this conversation (hex id).")
    var conversation: String?

    func run() async throws {
        try await withClient(options) { client in
            let only = try conversation.map(parseConversation)
            for summary in await client.conversations() where only == nil || summary.id == only {
                print("== \(summary.title ?? "(untitled)")  [\(summary.id.hex)]")
                for message in await client.conversation(summary.id)?.messages ?? [] where !message.isDeleted {
                    let branch = message.siblingCount > 1 ? " (\(message.siblingIndex + 1)/\(message.siblingCount))" : ""
                    let reactions = message.reactions.map(\.emoji).joined()
                    print("  \(message.role): \(message.text)\(branch)\(reactions.isEmpty ? "" : "  \(reactions)")")
                }
            }
        }
    }
}
