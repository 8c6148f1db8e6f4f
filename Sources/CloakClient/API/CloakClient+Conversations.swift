public import CloakCRDT
public import CloakProtocol

extension CloakClient {
    /// Every conversation of the account library, pinned first.
    public func conversations() -> [ConversationSummary] {
        engine.conversations()
    }

    /// The rendered state of one conversation, or nil if it is unknown here.
    public func conversation(_ id: ConversationID) -> ConversationView? {
        engine.conversation(id)
    }

    /// Creates a conversation (added to the account library) and returns its id.
    public func createConversation(title: String? = nil) throws(ClientError) -> ConversationID {
        let result = try engine.createConversation(title: title)
        drain()
        return result
    }

    /// Appends a complete message (as the child of `parent`, or of the active branch's last
    /// message when nil) and returns its id.
    @discardableResult
    public func appendMessage(
        to conversation: ConversationID, role: MessageRole, text: String, parent: MessageID? = nil
    ) throws(ClientError) -> MessageID {
        let result = try engine.appendMessage(to: conversation, role: role, text: text, parent: parent)
        drain()
        return result
    }

    /// Starts a message whose text will arrive in pieces (an AI reply streaming token by token).
    public func beginMessage(in conversation: ConversationID, parent: MessageID? = nil, role: MessageRole = .assistant) throws(ClientError) -> MessageID {
        let result = try engine.beginMessage(in: conversation, parent: parent, role: role)
        drain()
        return result
    }

    /// Appends streamed text to a message. Pieces are batched for ~100 ms into one change set
    /// (each piece is durable as soon as this returns).
    public func streamText(_ text: String, into message: MessageID, in conversation: ConversationID) throws(ClientError) {
        try engine.streamText(text, into: message, in: conversation)
        drain()
    }

    /// Seals any streamed text still being batched, so it syncs now.
    public func finishStreaming(in conversation: ConversationID) throws(ClientError) {
        try engine.finishStreaming(in: conversation)
        drain()
    }

    /// Replaces `range` (Unicode scalar offsets) of a message's text with `replacement`.
    public func editText(
        in conversation: ConversationID, message: MessageID, range: Range<Int>, replacement: String
    ) throws(ClientError) {
        try engine.editText(in: conversation, message: message, range: range, replacement: replacement)
        drain()
    }

    /// Deletes a message (a tombstone: its branch stays navigable).
    public func deleteMessage(_ message: MessageID, in conversation: ConversationID) throws(ClientError) {
        try engine.deleteMessage(message, in: conversation)
        drain()
    }

    /// Creates a sibling of `message` (an edited prompt or a regenerated reply), makes it the
    /// active branch and returns its id.
    @discardableResult
    public func branch(from message: MessageID, in conversation: ConversationID, role: MessageRole, text: String) throws(ClientError) -> MessageID {
        let result = try engine.branch(from: message, in: conversation, role: role, text: text)
        drain()
        return result
    }

    /// Makes `message` the active child at its fork point.
    public func selectBranch(_ message: MessageID, in conversation: ConversationID) throws(ClientError) {
        try engine.selectBranch(message, in: conversation)
        drain()
    }

    /// Adds (or, with `remove`, removes) this device's reaction.
    public func react(_ emoji: String, to message: MessageID, in conversation: ConversationID, remove: Bool = false) throws(ClientError) {
        try engine.react(emoji, to: message, in: conversation, remove: remove)
        drain()
    }

    /// Sets a metadata field (title, pinned, archived, model, folder or a custom key).
    public func setMetadata(_ field: MetadataField, to value: MetadataValue, in conversation: ConversationID) throws(ClientError) {
        try engine.setMetadata(field, to: value, in: conversation)
        drain()
    }

    /// Renames a conversation.
    public func rename(_ conversation: ConversationID, to title: String) throws(ClientError) {
        try engine.rename(conversation, to: title)
        drain()
    }

    /// Pins or unpins a conversation.
    public func pin(_ conversation: ConversationID, _ pinned: Bool = true) throws(ClientError) {
        try engine.pin(conversation, pinned)
        drain()
    }

    /// Archives (or restores) a conversation: its metadata flag and its library state.
    public func archive(_ conversation: ConversationID, _ archived: Bool = true) throws(ClientError) {
        try engine.archive(conversation, archived)
        drain()
    }

    /// Marks everything up to the newest message read by this device.
    public func markRead(_ conversation: ConversationID) throws(ClientError) {
        try engine.markRead(conversation)
        drain()
    }

    /// The state hash of a conversation (equal on converged devices).
    public func stateHash(of conversation: ConversationID) -> [UInt8]? {
        engine.stateHash(of: conversation)
    }

    /// Every message's text in a conversation, across all branches, in tree order (for tools
    /// and tests that check nothing was lost or duplicated).
    public func allMessageTexts(_ conversation: ConversationID) -> [String] {
        engine.allMessageTexts(conversation)
    }

    /// Every message of a conversation, across all branches, depth first (each message before
    /// its children, siblings in order): where every branch went, not only the active one.
    public func messageTree(_ conversation: ConversationID) -> [RenderedMessage] {
        engine.messageTree(conversation)
    }
}

extension CloakClient {
    /// The conversation's rendered state now and after every change, until the client closes.
    public func observe(_ conversation: ConversationID) -> AsyncStream<ConversationView> {
        let (stream, continuation) = AsyncStream<ConversationView>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextObserverID
        nextObserverID += 1
        observers[conversation, default: [:]][id] = continuation
        if let view = engine.conversation(conversation) { continuation.yield(view) }
        continuation.onTermination = { _ in Task { await self.removeObserver(id, conversation) } }
        return stream
    }

    /// The conversation list now and after every change.
    public func observeConversations() -> AsyncStream<[ConversationSummary]> {
        let (stream, continuation) = AsyncStream<[ConversationSummary]>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextObserverID
        nextObserverID += 1
        listObservers[id] = continuation
        continuation.yield(engine.conversations())
        continuation.onTermination = { _ in Task { await self.removeListObserver(id) } }
        return stream
    }

    /// Security events (tampering, forks, forged devices…) as they are detected.
    public func securityEvents() -> AsyncStream<SecurityEvent> {
        let (stream, continuation) = AsyncStream<SecurityEvent>.makeStream()
        let id = nextObserverID
        nextObserverID += 1
        eventObservers[id] = continuation
        continuation.onTermination = { _ in Task { await self.removeEventObserver(id) } }
        return stream
    }

    /// Connection state changes.
    public func connectionStates() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream<ConnectionState>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextObserverID
        nextObserverID += 1
        stateObservers[id] = continuation
        continuation.yield(connectionState)
        continuation.onTermination = { _ in Task { await self.removeStateObserver(id) } }
        return stream
    }

    /// What this device can truthfully say about its sync now.
    public func syncStatus() -> SyncStatus {
        engine.syncStatus
    }

    /// The sync status now and after every change, until the client closes.
    public func syncStatuses() -> AsyncStream<SyncStatus> {
        let (stream, continuation) = AsyncStream<SyncStatus>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = nextObserverID
        nextObserverID += 1
        statusObservers[id] = continuation
        let status = engine.syncStatus
        lastStatus = status
        continuation.yield(status)
        continuation.onTermination = { _ in Task { await self.removeStatusObserver(id) } }
        return stream
    }

    /// The newest security events recorded in the local store (up to 2,000, oldest first); the
    /// ``securityEvents()`` stream delivers every one as it happens.
    public func recordedSecurityEvents() throws(ClientError) -> [SecurityEvent] {
        try engine.recordedSecurityEvents()
    }


    func removeObserver(_ id: Int, _ conversation: ConversationID) { observers[conversation]?[id] = nil }
    func removeListObserver(_ id: Int) { listObservers[id] = nil }
    func removeEventObserver(_ id: Int) { eventObservers[id] = nil }
    func removeStateObserver(_ id: Int) { stateObservers[id] = nil }
    func removeStatusObserver(_ id: Int) { statusObservers[id] = nil }
}
