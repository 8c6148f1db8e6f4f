import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Testing

@_spi(Simulation) @testable import CloakClient

@Suite("Two or three devices converge through relayed change sets")
struct ConvergenceTests {
    @Test("ADV-07 concurrent edits on two devices converge for any interleaving", arguments: [1, 2, 3, 4] as [UInt64])
    func concurrentEdits(seed: UInt64) async throws {
        let devices = try await makeAccount(devices: 2, seed: seed)
        let (a, b) = (devices[0], devices[1])
        let relay = Relay()
        let chat = try await a.createConversation(title: "shared")
        try await relay.collect(from: a)
        _ = try await relay.deliverAll(to: b)
        var rng = SeededRandom(seed: seed)
        for round in 0..<30 {
            for device in [a, b] where Bool.random(using: &rng) {
                try await randomEdit(device, chat, round: round, rng: &rng)
            }
            if Int.random(in: 0..<3, using: &rng) == 0 {
                try await relay.collect(from: [a, b].randomElement(using: &rng)!)
                _ = try await relay.deliverAll(to: [a, b].randomElement(using: &rng)!)
            }
        }
        try await relay.collect(from: a)
        try await relay.collect(from: b)
        _ = try await relay.deliverAll(to: a)
        _ = try await relay.deliverAll(to: b)
        let hashA = await a.stateHash(of: chat)
        #expect(hashA != nil)
        #expect(hashA == (await b.stateHash(of: chat)))
        #expect(await texts(a, chat) == (await texts(b, chat)))
        #expect(await a.conversations().map(\.id) == [chat])
        #expect(await b.conversations().map(\.id) == [chat])
    }

    @Test("ADV-07 change sets reordered across three devices still converge")
    func reorderedAcrossDevices() async throws {
        let devices = try await makeAccount(devices: 3, seed: 9)
        let relay = Relay()
        let chat = try await devices[0].createConversation(title: "three")
        try await relay.collect(from: devices[0])
        for device in devices.dropFirst() { _ = try await relay.deliverAll(to: device) }
        for (index, device) in devices.enumerated() {
            for n in 0..<5 { try await device.appendMessage(to: chat, role: .user, text: "d\(index) m\(n)") }
        }
        var all: [[UInt8]] = []
        for device in devices { all += try await device._drainOutbox() }
        // Deliver in reverse, so every later change set arrives before its predecessors.
        let reversed = all.reversed().enumerated().map { (cursor: UInt64($0.offset + 1), wire: $0.element) }
        for device in devices { _ = try await device._receive(reversed) }
        let hashes = await devices.asyncMap { await $0.stateHash(of: chat) }
        #expect(Set(hashes.compactMap { $0 }).count == 1)
        // Concurrent appends from devices that had not seen each other branch the tree; every
        // message is there on every device.
        for device in devices {
            #expect(await device.conversations().first?.messageCount == 15)
        }
        for device in devices { #expect(await device._heldCount() == 0) }
    }

    @Test("a streamed reply of 2,000 chunks arrives complete and in order as few change sets")
    func streamedReply() async throws {
        let devices = try await makeAccount(devices: 2, seed: 5)
        let (a, b) = (devices[0], devices[1])
        let chat = try await a.createConversation()
        let prompt = try await a.appendMessage(to: chat, role: .user, text: "tell me a story")
        let reply = try await a.beginMessage(in: chat, parent: prompt)
        var expected = ""
        var rng = SeededRandom(seed: 77)
        for index in 0..<2000 {
            let chunk = "t\(index)" + String(repeating: "x", count: Int.random(in: 0..<5, using: &rng)) + " "
            expected += chunk
            try await a.streamText(chunk, into: reply, in: chat)
        }
        try await a.finishStreaming(in: chat)
        let wires = try await a._drainOutbox()
        #expect(wires.count <= 4, "streamed text is batched, not one change set per chunk")
        _ = try await b._receive(wires.enumerated().map { (UInt64($0.offset + 1), $0.element) })
        let messages = await b.conversation(chat)?.messages ?? []
        #expect(messages.map(\.text) == ["tell me a story", expected])
        #expect(messages.last?.role == .assistant)
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}

/// One random edit of the kinds the app offers.
func randomEdit(_ device: CloakClient, _ chat: ConversationID, round: Int, rng: inout SeededRandom) async throws {
    let messages = await device.conversation(chat)?.messages ?? []
    switch Int.random(in: 0..<6, using: &rng) {
    case 0, 1:
        try await device.appendMessage(to: chat, role: .user, text: "r\(round)-\(rng.next() % 1000)")
    case 2 where !messages.isEmpty:
        let target = messages.randomElement(using: &rng)!
        let length = target.text.unicodeScalars.count
        let at = Int.random(in: 0...length, using: &rng)
        try await device.editText(in: chat, message: target.id, range: at..<min(length, at + 2), replacement: "~")
    case 3 where !messages.isEmpty:
        try await device.react(["👍", "🎉", "❤️"].randomElement(using: &rng)!, to: messages.randomElement(using: &rng)!.id, in: chat)
    case 4:
        try await device.rename(chat, to: "title \(round)")
    case 5 where !messages.isEmpty:
        try await device.branch(from: messages.randomElement(using: &rng)!.id, in: chat, role: .user, text: "alt \(round)")
    default:
        try await device.pin(chat, Bool.random(using: &rng))
    }
}
