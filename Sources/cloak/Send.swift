import ArgumentParser
import CloakCRDT
import CloakClient
import CloakProtocol
import Foundation

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add a message to a conversation; says \"sent\" only once the server has it.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Conversation id (hex); see `cloak show`.")
    var conversation: String?
    @Option(name: .long, help: "Create a new conversation with this title.")
    var new: String?
    @Option(name: .long, help: "user, assistant, system or tool.")
    var role: String = "user"
    @Option(name: .long, help: "Send the message this many times (numbered), printing each as it is accepted.")
    var `repeat`: Int = 1
    @Argument(help: "The message text.")
    var text: String

    func run() async throws {
        let roles: [String: MessageRole] = ["user": .user, "assistant": .assistant, "system": .system, "tool": .tool]
        guard let messageRole = roles[role] else { terminate(.usage("--role \(role) is not a role: give user, assistant, system or tool")) }
        var only: ConversationID?
        if let conversation {
            do { only = try parseConversation(conversation) } catch { terminate(error) }
        }
        let session = await Session.open(options)
        let client = session.client
        // Catch up first: the conversation (or the newest list of them) may have been made on
        // another device. Without the server the message is still written here, and sent later.
        let before = await session.sync(for: options.wait)
        var offline: CLIError?
        switch before {
        case .synced: break
        case .removed, .refused: await session.fail(await session.problem(before))
        case .gaveUp: offline = await session.problem(before)
        }
        do {
            let id: ConversationID
            if let new {
                id = try await client.createConversation(title: new)
            } else if let only {
                id = only
            } else if let first = await client.conversations().first {
                id = first.id
            } else {
                id = try await client.createConversation(title: "Notes")
            }
            if `repeat` <= 1 {
                try await client.appendMessage(to: id, role: messageRole, text: text)
            } else {
                FileHandle.standardOutput.write(Data("conversation \(id.hex)\n".utf8))
                for index in 0..<`repeat` {
                    // Each call returns only once the message is durable on this device.
                    try await client.appendMessage(to: id, role: messageRole, text: "\(text) \(index)")
                    FileHandle.standardOutput.write(Data("accepted \(index)\n".utf8))  // unbuffered: a kill must not lose it
                }
            }
            // A server that could not be reached gets a moment, not another full wait.
            let after = await session.sync(for: offline == nil ? options.wait : .milliseconds(500))
            guard case .synced = after else {
                print("saved on this device in conversation \(id.hex), not sent yet")
                await session.fail(await session.problem(after))
            }
            print(`repeat` <= 1 ? "sent to \(id.hex)" : "sent \(`repeat`) messages to \(id.hex)")
        } catch {
            await session.fail(error)
        }
        await session.finish()
    }
}
