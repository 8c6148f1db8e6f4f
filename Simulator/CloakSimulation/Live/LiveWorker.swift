import CloakClient
import CloakCRDT
import CloakProtocol

/// One device's share of the workload, one operation at a time (a person uses one device at a
/// time; several devices of an account work at once). Appends, streams, branches and deletes
/// go to the conversations this device created, so a device's own messages form a chain
/// rather than racing its siblings' (concurrent sibling writes are the deterministic mode's
/// job); edits, reactions and renames go to any conversation of the account.
///
/// Every operation leaves a token other devices will render (``RenderTokens``), registered with
/// the recorder before the call so its latency runs from the call to the render.
struct LiveWorker {
    let device: LiveDevice
    /// The other devices of the account (they must render what this one does).
    let others: [Int]
    let recorder: LiveRecorder
    var random: SimRandom
    /// Conversations this device created, newest last.
    var owned: [ConversationID] = []
    var written = 0

    /// Messages in a conversation before its owner starts a new one (keeps views small, as a
    /// chat app's are).
    static let messagesPerConversation = 40
    static let emoji = ["👍", "🎉", "❤️", "😂", "🚀", "👀", "🙏", "🔥"]

    var client: CloakClient { device.client }

    /// Runs one operation drawn from the mix.
    mutating func performOne() async {
        let roll = random.below(100)
        guard let current = owned.last else { return await create() }
        let currentCount = await client.conversation(current)?.messages.count ?? 0
        switch roll {
        case _ where currentCount >= Self.messagesPerConversation: await create()
        case ..<5: await create()
        case ..<45: await append(to: current)
        case ..<57: await stream(into: current)
        case ..<71: if await !edit() { await append(to: current) }
        case ..<83: if await !react() { await append(to: current) }
        case ..<89: await rename()
        case ..<95: if await !branch(in: current) { await append(to: current) }
        default: if await !delete(in: current) { await append(to: current) }
        }
    }

    private mutating func create() async {
        let token = recorder.canary()
        let created = await attempt(.create, token: token) { client in
            (try await client.createConversation(title: "Chat \(token)"), nil)
        }
        if let (id, _) = created { owned.append(id) }
    }

    private mutating func append(to conversation: ConversationID) async {
        let token = recorder.canary()
        written += 1
        let text = "Note \(written) from \(device.name): \(token)"
        let role: MessageRole = random.chance(0.5) ? .user : .assistant
        await attempt(.append, token: token) { client in
            (conversation, try await client.appendMessage(to: conversation, role: role, text: text))
        }
    }

    /// An assistant reply streamed in a few chunks; its token is in the last one, and its
    /// latency runs from that chunk to the render.
    private mutating func stream(into conversation: ConversationID) async {
        let chunks = random.within(2...6)
        let pauses = (0..<chunks).map { _ in random.within(5...30) }
        let reply: MessageID
        do throws(ClientError) { reply = try await client.beginMessage(in: conversation, role: .assistant) } catch {
            return recorder.refused(.stream, token: nil, error: error)
        }
        do throws(ClientError) {
            for (index, pause) in pauses.enumerated() {
                try await client.streamText("token\(index) ", into: reply, in: conversation)
                try? await Task.sleep(for: .milliseconds(pause))
            }
        } catch {
            return recorder.refused(.stream, token: nil, error: error)
        }
        let token = recorder.canary()
        await attempt(.stream, token: token) { client in
            try await client.streamText("done \(token)", into: reply, in: conversation)
            try await client.finishStreaming(in: conversation)
            return (conversation, reply)
        }
    }

    /// Inserts a token at the start of a message of any conversation of the account (inserts
    /// only: a deletion could remove another edit's token, which would then look lost).
    private mutating func edit() async -> Bool {
        guard let (conversation, message) = await someMessage() else { return false }
        let token = recorder.canary()
        await attempt(.edit, token: token) { client in
            try await client.editText(in: conversation, message: message.id, range: 0..<0, replacement: "\(token) ")
            return (conversation, message.id)
        }
        return true
    }

    private mutating func react() async -> Bool {
        guard let (conversation, message) = await someMessage() else { return false }
        let present = Set(message.reactions.map(\.emoji))
        let unused = Self.emoji.filter { !present.contains($0) }
        guard !unused.isEmpty else { return false }
        let emoji = random.pick(unused)
        let token = RenderTokens.reaction(emoji, on: message.id)
        await attempt(.react, token: token, emoji: emoji) { client in
            try await client.react(emoji, to: message.id, in: conversation)
            return (conversation, message.id)
        }
        return true
    }

    private mutating func rename() async {
        let conversations = await client.conversations()
        guard !conversations.isEmpty else { return await create() }
        let conversation = random.pick(conversations).id
        let token = recorder.canary()
        await attempt(.rename, token: token) { client in
            try await client.rename(conversation, to: "Chat \(token)")
            return (conversation, nil)
        }
    }

    /// Regenerates the last message of the device's current conversation (a new sibling, which
    /// becomes the active branch).
    private mutating func branch(in conversation: ConversationID) async -> Bool {
        guard let last = await client.conversation(conversation)?.messages.last(where: { !$0.isDeleted }) else { return false }
        let token = recorder.canary()
        await attempt(.branch, token: token) { client in
            (conversation, try await client.branch(from: last.id, in: conversation, role: last.role, text: "Again: \(token)"))
        }
        return true
    }

    /// Deletes an earlier message of the device's current conversation (never the last, so the
    /// conversation carries on from a live message).
    private mutating func delete(in conversation: ConversationID) async -> Bool {
        let path = await client.conversation(conversation)?.messages.dropLast().filter { !$0.isDeleted } ?? []
        guard !path.isEmpty else { return false }
        let target = random.pick(Array(path)).id
        await attempt(.delete, token: nil) { client in
            try await client.deleteMessage(target, in: conversation)
            return (conversation, target)
        }
        return true
    }

    /// A live message of a random conversation of the account, as this device renders it.
    private mutating func someMessage() async -> (ConversationID, RenderedMessage)? {
        let conversations = await client.conversations()
        guard !conversations.isEmpty else { return nil }
        let conversation = random.pick(conversations).id
        let messages = await client.conversation(conversation)?.messages.filter { !$0.isDeleted } ?? []
        guard !messages.isEmpty else { return nil }
        return (conversation, random.pick(messages))
    }

    /// Registers the token, makes the call and records the outcome. `call` returns the
    /// conversation and the message the operation created or touched.
    @discardableResult
    private func attempt(
        _ kind: AcceptedOperation.Kind, token: String?, emoji: String? = nil,
        _ call: (CloakClient) async throws -> (ConversationID, MessageID?)
    ) async -> (ConversationID, MessageID?)? {
        if let token { recorder.expect(token: token, kind: kind, origin: device.index, others: others, startMillis: recorder.now()) }
        // The closures throw `any Error` (Swift does not infer a closure's typed throws), but
        // every call in them throws ClientError.
        do {
            let (touched, message) = try await call(client)
            recorder.accepted(AcceptedOperation(
                kind: kind, account: device.account, device: device.index, conversation: touched, message: message,
                token: token ?? "", emoji: emoji))
            return (touched, message)
        } catch let error as ClientError {
            recorder.refused(kind, token: token, error: error)
            return nil
        } catch {
            recorder.refused(kind, token: token, code: "client:\(type(of: error))")
            return nil
        }
    }
}
