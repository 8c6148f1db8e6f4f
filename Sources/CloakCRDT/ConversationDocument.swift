/// One conversation as a CRDT: a tree of messages with collaborative text, branch choices,
/// metadata, reactions and read markers. Local edits change it and return the operations to
/// ship; `apply` merges operations from other devices in any order.
///
/// ```swift
/// var me = Replica(id: myReplicaID)
/// var doc = ConversationDocument()
/// let ask = try doc.createMessage(parent: nil, role: .user, text: "Plan a trip", replica: &me, physicalMillis: now)
/// let reply = try doc.createMessage(parent: ask.id, role: .assistant, text: "", replica: &me, physicalMillis: now)
/// let chunk = try doc.appendText("Day 1: …", to: reply.id, replica: &me, physicalMillis: now)
/// let plaintext = OperationBatch.encode([ask, reply, chunk])       // into a change set
///
/// var other = ConversationDocument()                               // another device
/// let report = other.apply(try OperationBatch.decode(plaintext), physicalMillis: now)
/// assert(other.stateHash == doc.stateHash)
/// for message in other.activeBranch() { render(message.role, message.text) }
/// ```
///
/// Semantics (docs/design.md "Conversation CRDT", CONVERSATIONS.md): a message's parent, role,
/// author and creation time are immutable; siblings are ordered by creation HLC, then author; each fork point's
/// active child is a last-writer-wins register (default: the newest live child); metadata
/// fields are LWW registers; message text is a Fugue sequence (`TextSequence`); message and
/// character deletions are tombstones; reactions are an add-wins set of (emoji, account);
/// read markers are a max-register per device. Applying is idempotent, commutative and
/// associative; an operation whose dependencies have not arrived is held (see `apply`).
///
/// The type is a value: copies are independent, and it is `Sendable`. It reads no clock and
/// no randomness; time comes in as `physicalMillis`.
public struct ConversationDocument: Sendable {
    var replicas = ReplicaTable()
    var tree = MessageTree()
    /// UTF-8 bytes of all inserted text, append-only; runs point into it.
    var arena: [UInt8] = []
    var branchChoices: [PackedID: LWWRegister<PackedID>] = [:]
    var metadataRegisters: [MetadataField: LWWRegister<MetadataValue>] = [:]
    var markers = ReadMarkers()
    var delivery: DeliveryState
    /// The message most recently edited locally: typing and streaming hit it repeatedly.
    var lastEdited: (id: MessageID, slot: Int)?

    /// An empty conversation.
    public init(limits: DeliveryLimits = DeliveryLimits()) {
        delivery = DeliveryState(limits: limits)
    }

    // MARK: Reading

    /// Number of messages (deleted ones included).
    public var messageCount: Int { tree.nodes.count }

    /// Operations held in the pending buffer (missing dependencies or future timestamps).
    public var pendingCount: Int { delivery.pending.count }

    /// The delivery limits in force.
    public var limits: DeliveryLimits { delivery.limits }

    /// The active branch from the root down, as the app renders it: at each fork point the
    /// selected child if it is live, else the newest live child (deleted messages stay on the
    /// path only when no live sibling exists, flagged `isDeleted` with empty text).
    public func activeBranch() -> [RenderedMessage] {
        activePathSlots().map(render)
    }

    /// The ids along the active branch.
    public func activePath() -> [MessageID] {
        activePathSlots().compactMap { replicas.unpack(tree.nodes[$0].id) }
    }

    /// The last message of the active branch: what a new message follows by default. The same
    /// as `activePath().last` without building the path (each local append asks for it, and a
    /// long conversation's path is thousands of ids).
    public func activeTip() -> MessageID? {
        var tip: Int?
        var current = activeChildSlot(of: nil)
        var steps = 0
        while let slot = current, steps <= tree.nodes.count {
            tip = slot
            steps += 1
            current = activeChildSlot(of: slot)
        }
        return tip.flatMap { replicas.unpack(tree.nodes[$0].id) }
    }

    /// One message, rendered.
    public func message(_ id: MessageID) -> RenderedMessage? {
        slot(of: id).map(render)
    }

    /// Children of `parent` (nil: the root messages) in sibling order: the tree.
    public func children(of parent: MessageID?) -> [MessageID] {
        guard let parentSlot = parentSlotOrRoot(parent) else { return [] }
        return tree.children(of: parentSlot).compactMap { replicas.unpack(tree.nodes[$0].id) }
    }

    /// The child of `parent` (nil: the root) on the active branch.
    public func activeChild(of parent: MessageID?) -> MessageID? {
        guard let parentSlot = parentSlotOrRoot(parent), let child = activeChildSlot(of: parentSlot) else { return nil }
        return replicas.unpack(tree.nodes[child].id)
    }

    /// The current text of a message ("" when deleted).
    public func text(of id: MessageID) -> String? {
        slot(of: id).map { renderText(slot: $0) }
    }

    /// The number of visible Unicode scalars in a message's text (positions run 0...length).
    public func textLength(of id: MessageID) -> Int? {
        slot(of: id).map { tree.visibleCount($0) }
    }

    /// The metadata registers, typed.
    public var metadata: ConversationMetadata {
        var result = ConversationMetadata()
        for (field, register) in metadataRegisters {
            result.set(field, register.value)
        }
        return result
    }

    /// One metadata register's value (`.unset` if never written or cleared).
    public func value(of field: MetadataField) -> MetadataValue {
        metadataRegisters[field]?.value ?? .unset
    }

    /// Each device's read marker.
    public var readMarkers: [ReplicaID: HLCTimestamp] { markers.markers }

    /// An estimate of the heap bytes the state occupies (text content, runs, messages and
    /// indexes), for memory budgets and benchmarks; it does not include allocator overhead.
    public var approximateMemoryBytes: Int {
        var total = arena.capacity + tree.nodes.capacity * MemoryLayout<MessageNode>.stride
        total += tree.slots.count * 12
        for slot in tree.nodes.indices { total += tree.textBytes(slot) }
        for set in tree.reactionSets where !set.isEmpty { total += 64 + 96 * set.tagCount }
        return total + delivery.pending.bytes + 64 * (branchChoices.count + metadataRegisters.count)
    }

    /// Number of text runs across all messages (run-length encoding makes a streamed reply one run).
    public var textRunCount: Int {
        tree.nodes.indices.reduce(0) { $0 + tree.runCount($1) }
    }

    // MARK: Internals shared by the extensions

    /// Appends `text`'s UTF-8 to the arena and returns where it starts. Contiguous bytes are
    /// copied at once (a generic append from the UTF-8 view goes byte by byte through index
    /// checks), and a keystroke's single byte is appended as a byte.
    mutating func appendToArena(_ text: String) -> Int {
        let start = arena.count
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { bytes in
            if bytes.count == 1 {
                arena.append(bytes[0])
            } else {
                arena.append(contentsOf: bytes)
            }
        }
        if copied == nil { arena.append(contentsOf: text.utf8) }
        return start
    }

    func slot(of id: MessageID) -> Int? {
        replicas.pack(id).flatMap { tree.slot(of: $0) }
    }

    /// `.some(nil)` for the root, `.some(slot)` for a known message, nil for an unknown one.
    private func parentSlotOrRoot(_ parent: MessageID?) -> Int?? {
        guard let parent else { return .some(nil) }
        guard let found = slot(of: parent) else { return nil }
        return .some(found)
    }

    func activeChildSlot(of parent: Int?) -> Int? {
        let key = parent.map { tree.nodes[$0].id } ?? .none
        if let chosen = branchChoices[key]?.value, let chosenSlot = tree.slot(of: chosen),
            !tree.nodes[chosenSlot].isDeleted, tree.nodes[chosenSlot].parent == key
        {
            return chosenSlot
        }
        var newestLive: Int?
        var newest: Int?
        var child = parent.map { tree.nodes[$0].firstChild } ?? tree.rootFirst
        while child >= 0 {
            newest = Int(child)
            if !tree.nodes[Int(child)].isDeleted { newestLive = Int(child) }
            child = tree.nodes[Int(child)].nextSibling
        }
        return newestLive ?? newest
    }

    /// Iterative walk (no recursion: a 10^6-deep chain must not overflow the stack).
    func activePathSlots() -> [Int] {
        var path: [Int] = []
        var current = activeChildSlot(of: nil)
        while let slot = current, path.count <= tree.nodes.count {
            path.append(slot)
            current = activeChildSlot(of: slot)
        }
        return path
    }

    func renderText(slot: Int) -> String {
        guard !tree.nodes[slot].isDeleted else { return "" }
        var bytes: [UInt8] = []
        tree.visibleBytes(slot, arena: arena, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    func render(_ slot: Int) -> RenderedMessage {
        let node = tree.nodes[slot]
        let siblings = tree.children(of: node.parent == .none ? nil : tree.slot(of: node.parent))
        return RenderedMessage(
            id: replicas.unpack(node.id) ?? OperationID(replica: ReplicaID(high: 0, low: 0), counter: 0),
            parent: replicas.unpack(node.parent),
            role: node.role,
            author: replicas.id(at: node.id.replicaIndex),
            created: node.created,
            text: renderText(slot: slot),
            reactions: tree.reactions(slot).reactions,
            isDeleted: node.isDeleted,
            siblingIndex: siblings.firstIndex(of: slot) ?? 0,
            siblingCount: siblings.count)
    }
}

/// A message as the app shows it.
///
/// ```swift
/// for message in doc.activeBranch() where !message.isDeleted {
///     show(message.role, message.text, badge: "\(message.siblingIndex + 1)/\(message.siblingCount)")
/// }
/// ```
public struct RenderedMessage: Hashable, Sendable {
    /// The message id (the id of the operation that created it).
    public var id: MessageID
    /// The parent message (nil for a root message).
    public var parent: MessageID?
    /// Who wrote it.
    public var role: MessageRole
    /// The device that created it.
    public var author: ReplicaID
    /// Its creation HLC timestamp.
    public var created: HLCTimestamp
    /// Its visible text ("" when deleted).
    public var text: String
    /// Live reactions, in canonical order.
    public var reactions: [Reaction]
    /// Deleted (a tombstone kept for its subtree and for concurrent edits).
    public var isDeleted: Bool
    /// Its position among its siblings (regenerations and edits of one turn).
    public var siblingIndex: Int
    /// How many siblings, itself included.
    public var siblingCount: Int
}

/// The conversation's metadata registers, typed for the app.
///
/// ```swift
/// let title = doc.metadata.title ?? "New chat"
/// ```
public struct ConversationMetadata: Hashable, Sendable {
    /// Title, if set.
    public var title: String?
    /// Pinned in the conversation list.
    public var pinned = false
    /// Archived.
    public var archived = false
    /// The AI model, if set.
    public var model: String?
    /// The folder, if set (a folder of the account library).
    public var folder: FolderID?
    /// App-defined registers that are set.
    public var custom: [String: MetadataValue] = [:]

    /// Empty metadata.
    public init() {}

    mutating func set(_ field: MetadataField, _ value: MetadataValue) {
        switch (field, value) {
        case (.title, .text(let text)): title = text
        case (.pinned, .flag(let flag)): pinned = flag
        case (.archived, .flag(let flag)): archived = flag
        case (.model, .text(let text)): model = text
        case (.folder, .bytes(let bytes)): folder = FolderReference.decode(bytes)
        case (.custom(let key), let value) where value != .unset: custom[key] = value
        default: break
        }
    }
}

/// The 24-byte form of a `FolderID` stored in the `.folder` metadata register.
enum FolderReference {
    static func encode(_ folder: FolderID) -> [UInt8] {
        var writer = ByteWriter(capacity: 24)
        writer.replicaID(folder.replica)
        for shift in stride(from: 56, through: 0, by: -8) {
            writer.byte(UInt8(truncatingIfNeeded: folder.counter >> UInt64(shift)))
        }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) -> FolderID? {
        guard bytes.count == 24, let replica = ReplicaID(bytes: bytes[0..<16]) else { return nil }
        let counter = bytes[16..<24].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return FolderID(replica: replica, counter: counter)
    }
}
