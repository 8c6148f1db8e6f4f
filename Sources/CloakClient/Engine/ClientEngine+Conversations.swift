public import CloakCRDT
@_spi(Randomness) public import CloakProtocol

// The conversation API: each edit is durable when it returns (sealed into a change set, or
// stored as a pending streaming batch) and is pushed when the connection allows.
extension ClientEngine {
    /// Every conversation of the account library, pinned first.
    public func conversations() -> [ConversationSummary] {
        core.summaries()
    }

    /// The rendered state of one conversation, or nil if it is unknown here.
    public func conversation(_ id: ConversationID) -> ConversationView? {
        core.view(of: id)
    }

    /// Creates a conversation (added to the account library) and returns its id.
    public func createConversation(title: String? = nil) throws(ClientError) -> ConversationID {
        let id = ConversationID.random(using: core.random)
        var output = try core.editLibrary { library, replica, now throws(LibraryEditError) in
            [try library.addConversation(id.libraryKey, replica: &replica, physicalMillis: now)]
        }
        core.documents.ensure(id)
        if let title {
            output.merge(try core.edit(id) { document, replica, now throws(ConversationEditError) in
                ([try document.setTitle(title, replica: &replica, physicalMillis: now)], ())
            }.1)
        }
        afterLocalEdit(output)
        return id
    }

    /// Appends a complete message (as the child of `parent`, or of the active branch's last
    /// message when nil) and returns its id.
    @discardableResult
    public func appendMessage(
        to conversation: ConversationID, role: MessageRole, text: String, parent: MessageID? = nil
    ) throws(ClientError) -> MessageID {
        let (id, output) = try core.edit(conversation) { document, replica, now throws(ConversationEditError) in
            let op = try document.createMessage(
                parent: parent ?? document.activeTip(), role: role, text: text, replica: &replica,
                physicalMillis: now)
            return ([op], op.id)
        }
        afterLocalEdit(output)
        return id
    }

    /// Starts a message whose text will arrive in pieces (an AI reply streaming token by token).
    public func beginMessage(in conversation: ConversationID, parent: MessageID? = nil, role: MessageRole = .assistant)
        throws(ClientError) -> MessageID
    {
        let (id, output) = try core.edit(conversation, streaming: true) { document, replica, now throws(ConversationEditError) in
            let op = try document.createMessage(
                parent: parent ?? document.activeTip(), role: role, text: "", replica: &replica,
                physicalMillis: now)
            return ([op], op.id)
        }
        afterLocalEdit(output)
        return id
    }

    /// Appends streamed text to a message. Pieces are batched for ~100 ms into one change set
    /// (each piece is durable as soon as this returns).
    public func streamText(_ text: String, into message: MessageID, in conversation: ConversationID)
        throws(ClientError)
    {
        let output = try core.edit(conversation, streaming: true) { document, replica, now throws(ConversationEditError) in
            ([try document.appendText(text, to: message, replica: &replica, physicalMillis: now)], ())
        }.1
        afterLocalEdit(output)
    }

    /// Seals any streamed text still being batched, so it syncs now.
    public func finishStreaming(in conversation: ConversationID) throws(ClientError) {
        afterLocalEdit(try core.flushDueBatches(force: true))
    }

    /// Replaces `range` (Unicode scalar offsets) of a message's text with `replacement`.
    public func editText(
        in conversation: ConversationID, message: MessageID, range: Range<Int>, replacement: String
    ) throws(ClientError) {
        let output = try core.edit(conversation) { document, replica, now throws(ConversationEditError) in
            var ops: [CRDTOperation] = []
            if !range.isEmpty {
                ops.append(try document.deleteText(in: message, range: range, replica: &replica, physicalMillis: now))
            }
            if !replacement.isEmpty {
                ops.append(try document.insertText(
                    replacement, into: message, at: range.lowerBound, replica: &replica, physicalMillis: now))
            }
            return (ops, ())
        }.1
        afterLocalEdit(output)
    }

    /// Deletes a message (a tombstone: its branch stays navigable).
    public func deleteMessage(_ message: MessageID, in conversation: ConversationID) throws(ClientError) {
        afterLocalEdit(try core.edit(conversation) { document, replica, now throws(ConversationEditError) in
            ([try document.deleteMessage(message, replica: &replica, physicalMillis: now)], ())
        }.1)
    }

    /// Creates a sibling of `message` (an edited prompt or a regenerated reply), makes it the
    /// active branch and returns its id.
    @discardableResult
    public func branch(from message: MessageID, in conversation: ConversationID, role: MessageRole, text: String)
        throws(ClientError) -> MessageID
    {
        let (id, output) = try core.edit(conversation) { document, replica, now throws(ConversationEditError) in
            let ops = try document.branch(from: message, role: role, text: text, replica: &replica, physicalMillis: now)
            return (ops, ops.first?.id ?? message)
        }
        afterLocalEdit(output)
        return id
    }

    /// Makes `message` the active child at its fork point.
    public func selectBranch(_ message: MessageID, in conversation: ConversationID) throws(ClientError) {
        afterLocalEdit(try core.edit(conversation) { document, replica, now throws(ConversationEditError) in
            ([try document.selectBranch(message, replica: &replica, physicalMillis: now)], ())
        }.1)
    }

    /// Adds (or, with `remove`, removes) this device's reaction.
    public func react(_ emoji: String, to message: MessageID, in conversation: ConversationID, remove: Bool = false)
        throws(ClientError)
    {
        let reaction = Reaction(emoji: emoji, reactor: core.me.bytes)
        afterLocalEdit(try core.edit(conversation) { document, replica, now throws(ConversationEditError) in
            let op = remove
                ? try document.removeReaction(reaction, from: message, replica: &replica, physicalMillis: now)
                : try document.addReaction(reaction, to: message, replica: &replica, physicalMillis: now)
            return ([op], ())
        }.1)
    }

    /// Sets a metadata field (title, pinned, archived, model, folder or a custom key).
    public func setMetadata(_ field: MetadataField, to value: MetadataValue, in conversation: ConversationID)
        throws(ClientError)
    {
        afterLocalEdit(try core.edit(conversation) { document, replica, now throws(ConversationEditError) in
            ([try document.setMetadata(field, to: value, replica: &replica, physicalMillis: now)], ())
        }.1)
    }

    /// Renames a conversation.
    public func rename(_ conversation: ConversationID, to title: String) throws(ClientError) {
        try setMetadata(.title, to: .text(title), in: conversation)
    }

    /// Pins or unpins a conversation.
    public func pin(_ conversation: ConversationID, _ pinned: Bool = true) throws(ClientError) {
        try setMetadata(.pinned, to: .flag(pinned), in: conversation)
    }

    /// Archives (or restores) a conversation: its metadata flag and its library state.
    public func archive(_ conversation: ConversationID, _ archived: Bool = true) throws(ClientError) {
        try setMetadata(.archived, to: .flag(archived), in: conversation)
        afterLocalEdit(try core.editLibrary { library, replica, now throws(LibraryEditError) in
            try library.setState(archived ? .archived : .active, of: conversation.libraryKey, replica: &replica,
                                 physicalMillis: now)
        })
    }

    /// Marks everything up to the newest message read by this device.
    public func markRead(_ conversation: ConversationID) throws(ClientError) {
        afterLocalEdit(try core.edit(conversation) { document, replica, now throws(ConversationEditError) in
            let newest = document.activeBranch().map(\.created).max() ?? .zero
            return ([try document.markRead(upTo: newest, replica: &replica, physicalMillis: now)], ())
        }.1)
    }

    /// The state hash of a conversation (equal on converged devices).
    public func stateHash(of conversation: ConversationID) -> [UInt8]? {
        core.documents.all.stateHash(of: conversation)
    }

    /// Every message's text in a conversation, across all branches, in tree order (for tools
    /// and tests that check nothing was lost or duplicated).
    public func allMessageTexts(_ conversation: ConversationID) -> [String] {
        guard let document = core.documents.conversations[conversation] else { return [] }
        var out: [String] = []
        var stack = document.children(of: nil).reversed().map { $0 }
        while let next = stack.popLast() {
            out.append(document.text(of: next) ?? "")
            stack += document.children(of: next).reversed()
        }
        return out
    }

    /// Every message of a conversation, across all branches, depth first: each message before
    /// its children, siblings in order.
    public func messageTree(_ conversation: ConversationID) -> [RenderedMessage] {
        guard let document = core.documents.conversations[conversation] else { return [] }
        var out: [RenderedMessage] = []
        var stack = document.children(of: nil).reversed().map { $0 }
        while let next = stack.popLast() {
            if let message = document.message(next) { out.append(message) }
            stack += document.children(of: next).reversed()
        }
        return out
    }
}
