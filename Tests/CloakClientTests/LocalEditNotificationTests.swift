import CloakCRDT
@_spi(Randomness) import CloakProtocol
import Testing

@_spi(Simulation) @testable import CloakClient

/// A local edit tells the app once: each notification re-renders an observed conversation.
@Suite("Local edits notify once")
struct LocalEditNotificationTests {
    @Test("one local edit yields one change notification")
    func oneNotificationPerEdit() async throws {
        let device = try await makeAccount(devices: 1)[0]
        let chat = try await device.createConversation(title: "notes")
        let changes = await device.changes()
        try await device.appendMessage(to: chat, role: .user, text: "hello")
        // A second edit marks the end of the first one's notifications.
        let other = try await device.createConversation(title: "other")
        var seen: [Set<ConversationID>] = []
        for await changed in changes {
            seen.append(changed)
            if changed.contains(other) { break }
        }
        #expect(seen.count { $0 == [chat] } == 1)
        #expect(seen.count { $0.contains(other) } == 1)
    }
}
