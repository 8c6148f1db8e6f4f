import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation
import Synchronization

extension Demo {
    func linkDevice(_ device: CloakClient, to existing: CloakClient) async throws -> String {
        let invitation = try await device.beginLink()
        async let pending = device.awaitLink(invitation, pollMillis: 100)
        let offer = try await existing.acceptLink(invitation.text)
        let link = try await pending
        guard link.shortAuthenticationString == offer.shortAuthenticationString else { throw DemoError.securityCodesDiffer }
        // Both users said yes: only now is the device added (PROTOCOL.md §21).
        async let joined: Void = device.confirmLink(link, codesMatch: true, pollMillis: 100)
        try await existing.completeLink(offer, codesMatch: true, pollMillis: 100)
        try await joined
        return offer.shortAuthenticationString
    }

    func streamReply(on device: CloakClient, in conversation: ConversationID, parent: MessageID, canaries: Canaries)
        async throws
    {
        let reply = try await device.beginMessage(in: conversation, parent: parent, role: .assistant)
        let words = "Day one: Alfama and the castle at sunset. Day two: Belém, pastéis, the river. Day three: Sintra."
            .split(separator: " ")
        for index in 0..<options.streamedTokens {
            let token = index == options.streamedTokens / 2 ? "\(canaries.make("stream")) " : "\(words[index % words.count]) "
            try await device.streamText(token, into: reply, in: conversation)
            try await Task.sleep(for: .milliseconds(3))
        }
        try await device.finishStreaming(in: conversation)
    }

    func writeMessages(on device: CloakClient, in conversation: ConversationID, count: Int, canaries: Canaries,
                       prefix: String) async throws {
        for index in 0..<count {
            let text = index == 0 ? "\(prefix) note \(index) \(canaries.make("message"))" : "\(prefix) note \(index)"
            try await device.appendMessage(to: conversation, role: index % 3 == 2 ? .assistant : .user, text: text)
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    func waitForConversations(_ ids: [ConversationID], on devices: [CloakClient]) async throws {
        try await poll(timeout: .seconds(20)) {
            for device in devices {
                let known = Set(await device.conversations().map(\.id))
                if !known.isSuperset(of: ids) { return false }
            }
            return true
        }
    }

    func waitForMessage(_ id: MessageID, in conversation: ConversationID, on device: CloakClient) async throws {
        try await poll(timeout: .seconds(20)) {
            await device.conversation(conversation)?.messages.contains { $0.id == id } ?? false
        }
    }

    func waitForConvergence(_ devices: [CloakClient], conversations: [ConversationID], timeout: Duration)
        async throws -> Bool
    {
        (try? await poll(timeout: timeout) {
            for conversation in conversations + [.library] {
                var hashes = Set<[UInt8]>()
                for device in devices { hashes.insert(await device.stateHash(of: conversation) ?? []) }
                if hashes.count != 1 { return false }
            }
            return true
        }) != nil
    }

    func poll(timeout: Duration, _ condition: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DemoError.timedOut
    }
}

/// Why the demo stopped.
public enum DemoError: Error, CustomStringConvertible {
    /// The server could not be reached (the transport's reason).
    case unreachable(server: String, reason: String)
    /// The two devices of a pairing showed different codes.
    case securityCodesDiffer
    /// Something did not happen in time.
    case timedOut

    /// A sentence.
    public var description: String {
        switch self {
        case .unreachable(let server, let reason):
            "cannot reach the server at \(server): \(reason) — start one (scripts/run does) or give its URL with --server"
        case .securityCodesDiffer: "the two devices of a link showed different security codes"
        case .timedOut: "the devices did not get each other's writes within the demo's time limits"
        }
    }
}

/// The canary strings the demo writes (each starts with `cloak-canary-`).
final class Canaries: Sendable {
    private let list = Mutex<[String]>([])

    func make(_ kind: String) -> String {
        list.withLock { all in
            let canary = "cloak-canary-\(kind)-\(all.count)"
            all.append(canary)
            return canary
        }
    }

    var all: [String] { list.withLock { $0 } }
}
