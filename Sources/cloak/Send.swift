import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add a message to a conversation.")
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
        guard let messageRole = roles[role] else { throw CLIError.usage("--role must be user, assistant, system or tool") }
        try await withClient(options) { client in
            let id: ConversationID
            if let new {
                id = try await client.createConversation(title: new)
            } else if let conversation {
                id = try parseConversation(conversation)
            } else if let first = await client.conversations().first {
                id = first.id
            } else {
                id = try await client.createConversation(title: "Notes")
            }
            if `repeat` <= 1 {
                try await client.appendMessage(to: id, role: messageRole, text: text)
                print("sent to \(id.hex)")
                return
            }
            FileHandle.standardOutput.write(Data("conversation \(id.hex)\n".utf8))
            for index in 0..<`repeat` {
                // Each call returns only once the message is durable on this device.
                try await client.appendMessage(to: id, role: messageRole, text: "\(text) \(index)")
                FileHandle.standardOutput.write(Data("accepted \(index)\n".utf8))  // unbuffered: a kill must not lose it
            }
        }
    }
}
