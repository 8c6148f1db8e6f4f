/// The unit of change: what local edits return, what change sets carry, what `apply` takes.
///
/// ```swift
/// var ops: [CRDTOperation] = []
/// ops.append(try doc.createMessage(parent: nil, role: .user, text: "Hi", replica: &me, physicalMillis: now))
/// let plaintext = OperationBatch.encode(ops)                 // change-set plaintext
/// let received = try OperationBatch.decode(plaintext)        // on another device
/// let report = other.apply(received, physicalMillis: now)    // idempotent, any order
/// ```
///
/// An operation is immutable. It names everything it touches by id, never by position, so it
/// means the same on every replica (RGA, Roh et al. 2011; Yjs/YATA, Nicolaescu et al. 2016).
/// It consumes `counterCount` consecutive counters of its writer, starting at `id.counter`:
/// one per character for text, plus one for the message itself on creation.
public struct CRDTOperation: Hashable, Sendable {
    /// The writer and first counter.
    public let id: OperationID
    /// The writer's HLC reading when it made the operation: a message's creation time, and
    /// the order of last-writer-wins writes.
    public let timestamp: HLCTimestamp
    /// What the operation does.
    public let payload: OperationPayload
    /// How many consecutive counters the operation consumes (at least 1 in any valid
    /// operation; `apply` rejects an empty insert).
    public let counterCount: UInt64

    /// Builds an operation; `counterCount` follows from the payload.
    public init(id: OperationID, timestamp: HLCTimestamp, payload: OperationPayload) {
        self.init(id: id, timestamp: timestamp, payload: payload, counterCount: payload.naturalCounterCount)
    }

    /// Builds an operation with an explicit counter count: coalesced deletions consume one
    /// counter per original deletion, and decoders already know text lengths.
    init(id: OperationID, timestamp: HLCTimestamp, payload: OperationPayload, counterCount: UInt64) {
        self.id = id
        self.timestamp = timestamp
        self.payload = payload
        self.counterCount = counterCount
    }

    /// The last id the operation consumes.
    var lastID: OperationID { id.advanced(by: counterCount &- 1) }
}

/// What an operation does. Conversation documents accept the first group, account library
/// documents the second; the wrong kind is rejected, never misapplied.
public enum OperationPayload: Hashable, Sendable {
    // MARK: Conversation

    /// Creates a message under `parent` (nil: a root message) with initial text. The message
    /// id is the operation id; the text's characters take the following counters.
    case createMessage(parent: MessageID?, role: MessageRole, text: String)
    /// Inserts text between two characters of a message: `after` is the character left of
    /// the insertion point when it was made (nil: the start), `before` the item right of it
    /// (nil: the end). These are the left and right origins of Fugue/YjsMod.
    case insertText(message: MessageID, after: OperationID?, before: OperationID?, text: String)
    /// Deletes the characters with these ids (tombstones: the characters stay as anchors).
    case deleteText(message: MessageID, spans: [IDSpan])
    /// Deletes a message (a tombstone: its subtree and concurrent edits still have an anchor).
    case deleteMessage(MessageID)
    /// Chooses which child of `parent` (nil: of the root) is on the active branch.
    case selectBranch(parent: MessageID?, child: MessageID)
    /// Writes one metadata register (last writer wins).
    case setMetadata(MetadataField, MetadataValue)
    /// Adds a reaction to a message (add-wins set: the operation id is the add's tag).
    case addReaction(message: MessageID, reaction: Reaction)
    /// Removes the adds of a reaction that the writer had observed (tags in `observed`).
    case removeReaction(message: MessageID, reaction: Reaction, observed: [OperationID])
    /// Raises the writer device's read marker (a max register) to `upTo`.
    case markRead(upTo: HLCTimestamp)

    // MARK: Account library

    /// Adds a conversation to the library (add-wins; the operation id is the tag).
    case addConversation(ConversationKey)
    /// Removes the observed adds of a conversation (purge from the library).
    case removeConversation(ConversationKey, observed: [OperationID])
    /// Sets a conversation's lifecycle state (last writer wins).
    case setConversationState(ConversationKey, ConversationState)
    /// Creates a folder; the folder id is the operation id.
    case createFolder(name: String)
    /// Renames a folder (last writer wins).
    case renameFolder(FolderID, name: String)
    /// Removes the observed creations of a folder.
    case removeFolder(FolderID, observed: [OperationID])
    /// Writes one library setting (last writer wins).
    case setSetting(key: String, value: MetadataValue)

    /// The counters a payload consumes when it was not coalesced.
    var naturalCounterCount: UInt64 {
        switch self {
        case .createMessage(_, _, let text): return 1 + UInt64(UTF8Scalars.count(of: text))
        case .insertText(_, _, _, let text): return UInt64(UTF8Scalars.count(of: text))
        default: return 1
        }
    }
}

/// Who wrote a message, as AI chat apps distinguish it.
///
/// ```swift
/// let op = try doc.createMessage(parent: last, role: .assistant, text: "", replica: &me, physicalMillis: now)
/// ```
public enum MessageRole: UInt8, Hashable, Sendable, CaseIterable {
    /// The person using the app.
    case user = 0
    /// The AI model's reply.
    case assistant = 1
    /// A system prompt.
    case system = 2
    /// A tool call result.
    case tool = 3
}

/// A conversation's metadata registers; each is last-writer-wins under the HLC.
///
/// ```swift
/// let op = try doc.setMetadata(.title, to: .text("Trip plans"), replica: &me, physicalMillis: now)
/// ```
public enum MetadataField: Hashable, Sendable, Comparable {
    /// The conversation title (`.text`).
    case title
    /// Pinned in the list (`.flag`).
    case pinned
    /// Archived (`.flag`).
    case archived
    /// The AI model used (`.text`).
    case model
    /// The folder (`.bytes` of a `FolderID`, see `ConversationDocument.setFolder`).
    case folder
    /// An app-defined key.
    case custom(String)
}

/// The value of a metadata register or a library setting.
///
/// ```swift
/// let value: MetadataValue = .flag(true)
/// ```
public enum MetadataValue: Hashable, Sendable {
    /// No value (a cleared register reads as nil).
    case unset
    /// A string.
    case text(String)
    /// A boolean.
    case flag(Bool)
    /// Opaque bytes (at most `DecodingLimits.bytesFieldMax`).
    case bytes([UInt8])
}

/// One reaction: which emoji, from which account (opaque id bytes supplied by the client).
///
/// ```swift
/// let thumbs = Reaction(emoji: "👍", reactor: accountID.bytes)
/// ```
public struct Reaction: Hashable, Sendable, Comparable {
    /// The emoji (any string; the app decides what it accepts).
    public var emoji: String
    /// The reacting account's id bytes.
    public var reactor: [UInt8]

    /// Builds a reaction.
    public init(emoji: String, reactor: [UInt8]) {
        self.emoji = emoji
        self.reactor = reactor
    }

    /// Canonical order: by emoji UTF-8 bytes, then reactor bytes.
    public static func < (lhs: Reaction, rhs: Reaction) -> Bool {
        if lhs.emoji != rhs.emoji {
            return lhs.emoji.utf8.lexicographicallyPrecedes(rhs.emoji.utf8)
        }
        return lhs.reactor.lexicographicallyPrecedes(rhs.reactor)
    }
}

/// The 16-byte id of a conversation in the account library (the client's random
/// conversation id, the one in change-set headers).
///
/// ```swift
/// let key = ConversationKey(bytes: conversationID.bytes)!
/// ```
public struct ConversationKey: Hashable, Comparable, Sendable {
    /// The same 16-byte, byte-ordered representation as `ReplicaID`.
    public let raw: ReplicaID

    /// Builds a key from exactly 16 bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard let raw = ReplicaID(bytes: bytes) else { return nil }
        self.raw = raw
    }

    init(raw: ReplicaID) {
        self.raw = raw
    }

    /// The 16 bytes.
    public var bytes: [UInt8] { raw.bytes }

    /// Byte order.
    public static func < (lhs: ConversationKey, rhs: ConversationKey) -> Bool { lhs.raw < rhs.raw }
}

/// A folder is identified by the operation that created it.
public typealias FolderID = OperationID

/// A conversation's lifecycle state in the account library.
///
/// ```swift
/// let ops = try library.setState(.trashed, of: key, replica: &me, physicalMillis: now)
/// ```
public enum ConversationState: UInt8, Hashable, Sendable, CaseIterable {
    /// In the main list.
    case active = 0
    /// Archived.
    case archived = 1
    /// In the trash (restorable until purged).
    case trashed = 2
}
