import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

/// `cloak assistant grant|list|revoke`: an AI assistant (`cloak-agent`) as a scoped, revocable
/// member of some conversations (PROTOCOL.md §29).
struct Assistant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Let an AI assistant read and answer in some conversations, list assistants, or revoke one.",
        subcommands: [Grant.self, List.self, Revoke.self])

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Grant the assistant whose invitation `cloak-agent init` printed access to conversations.")
        @OptionGroup var options: DeviceOptions
        @Argument(help: "The invitation (cloak-assistant1:…).")
        var invitation: String
        @Option(name: .long, help: "A conversation id (hex) it may read and answer in; repeat for several.")
        var conversation: [String] = []
        @Option(name: .long, help: "Days until its access ends by itself.")
        var days: Double = 7

        func run() async throws {
            guard !conversation.isEmpty else { throw CLIError.usage("name at least one --conversation (see `cloak show`)") }
            guard days > 0, days <= 3_650 else { throw CLIError.usage("--days is between 0 and 3650") }
            let ids = try conversation.map(parseConversation)
            try await withClient(options) { client in
                let info = try await client.grantAssistant(
                    invitation, conversations: ids, expires: Date(timeIntervalSinceNow: days * 86_400))
                print("granted assistant \(info.id.hex) \(info.scope.count) conversation(s) until \(describe(millis: info.expiresAtMillis))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the account's assistants and what they can read.")
        @OptionGroup var options: DeviceOptions

        func run() async throws {
            try await withClient(options) { client in
                let assistants = try await client.assistants()
                if assistants.isEmpty { print("no assistants") }
                for assistant in assistants {
                    let state =
                        assistant.canRead
                        ? "can read until \(describe(millis: assistant.expiresAtMillis))"
                        : assistant.isActive ? "expired" : "revoked"
                    print("\(assistant.id.hex)  \(state)  conversations: \(assistant.scope.map(\.hex).joined(separator: " "))")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End an assistant's access now; its conversations' keys rotate.")
        @OptionGroup var options: DeviceOptions
        @Argument(help: "The assistant id (hex, as `cloak assistant list` prints it).")
        var assistant: String

        func run() async throws {
            guard let bytes = try? Hex.decode(assistant), let id = try? DeviceID(validating: bytes, field: "assistant") else {
                throw CLIError.usage("an assistant id is 32 hex digits")
            }
            try await withClient(options) { client in
                try await client.revokeAssistant(id)
                print("revoked \(id.hex); it reads nothing written from now on")
            }
        }
    }
}

/// A time in ms since the Unix epoch, as an ISO 8601 date in UTC.
private func describe(millis: UInt64) -> String {
    Date(timeIntervalSince1970: Double(millis) / 1000).formatted(.iso8601)
}
