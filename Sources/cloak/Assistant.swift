import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

/// `cloak assistant grant|list|restrict|revoke`: an AI assistant (`cloak-agent`) as a scoped,
/// revocable member of some conversations (PROTOCOL.md §29).
struct Assistant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Let an AI assistant read and answer in some conversations, list assistants, narrow one's access, or revoke one.",
        subcommands: [Grant.self, List.self, Restrict.self, Revoke.self])

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
            guard !conversation.isEmpty else { terminate(.usage("name at least one --conversation (see `cloak show`)")) }
            guard days > 0, days <= 3_650 else { terminate(.usage("--days is between 0 and 3650")) }
            let ids: [ConversationID]
            do { ids = try conversation.map(parseConversation) } catch { terminate(error) }
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
            let id: DeviceID
            do { id = try parseAssistant(assistant) } catch { terminate(error) }
            try await withClient(options) { client in
                try await client.revokeAssistant(id)
                print("revoked \(id.hex); it reads nothing written from now on")
            }
        }
    }

    struct Restrict: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take conversations out of an assistant's scope; their keys rotate, it keeps the others.",
            discussion: "Removing every conversation of its scope ends its access, as `cloak assistant revoke` does.")
        @OptionGroup var options: DeviceOptions
        @Argument(help: "The assistant id (hex, as `cloak assistant list` prints it).")
        var assistant: String
        @Option(name: .long, help: "A conversation id (hex) to take out of its scope; repeat for several.")
        var conversation: [String] = []

        func run() async throws {
            let (id, ids): (DeviceID, [ConversationID])
            do throws(CLIError) {
                id = try parseAssistant(assistant)
                guard !conversation.isEmpty else {
                    throw CLIError.usage("name at least one --conversation to take away (see `cloak assistant list`)")
                }
                ids = try conversation.map(parseConversation)
            } catch { terminate(error) }
            try await withClient(options) { client in
                try await client.restrictAssistant(id, removing: ids)
                guard let info = try await client.assistants().first(where: { $0.id == id }), info.isActive else {
                    print("revoked \(id.hex): that was its whole scope; it reads nothing written from now on")
                    return
                }
                print("restricted \(id.hex): it reads nothing written from now on in \(ids.count) conversation(s); "
                      + "it keeps \(info.scope.count) conversation(s) until \(describe(millis: info.expiresAtMillis))")
            }
        }
    }
}

/// An assistant id as typed, checked.
private func parseAssistant(_ text: String) throws(CLIError) -> DeviceID {
    guard let bytes = try? Hex.decode(text), let id = try? DeviceID(validating: bytes, field: "assistant") else {
        throw .usage("\(text.isEmpty ? "an empty text" : "'\(text)'") is not an assistant id: one is 32 hex digits, "
                     + "as `cloak assistant list` prints it")
    }
    return id
}

/// A time in ms since the Unix epoch, as an ISO 8601 date in UTC.
private func describe(millis: UInt64) -> String {
    Date(timeIntervalSince1970: Double(millis) / 1000).formatted(.iso8601)
}
