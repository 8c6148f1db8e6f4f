import CloakCRDT
import CloakCrypto

/// The conversation vectors of `Protocol/CONVERSATIONS.md` §14: operation batches, merges,
/// snapshots and state hashes, generated from the CloakCRDT code by the same `cloak-vectors`
/// run as the protocol vectors. Every input is fixed (replica ids, times, texts), so the files
/// regenerate byte for byte.
enum CRDTVectors {
    /// The conversation vector files, in a fixed order.
    static func files() throws -> [ProtocolVectors.File] {
        [
            ProtocolVectors.File(name: "operation_batch.json", contents: try BatchVectors.cases().rendered()),
            ProtocolVectors.File(name: "document_merge.json", contents: try MergeVectors.cases().rendered()),
            ProtocolVectors.File(name: "document_snapshot.json", contents: try SnapshotVectors.cases().rendered()),
            ProtocolVectors.File(name: "state_hash.json", contents: try SnapshotVectors.hashCases().rendered()),
        ]
    }

    /// Replica ids that read well in hex: `11…11`, `22…22`, ….
    static func replica(_ digit: UInt8) -> ReplicaID {
        ReplicaID(bytes: [UInt8](repeating: digit &* 0x11, count: 16)) ?? ReplicaID(high: 0, low: 0)
    }

    /// Fixed wall-clock values from 2026-01-01T00:00:00Z (as the protocol vectors).
    static let baseMillis = ProtocolVectors.baseTimeMs
}

/// Why a vector could not be built: the code disagreed with what the generator asserts (two
/// delivery orders that do not converge, a snapshot that does not parse as specified, …).
struct VectorGenerationError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// JSON forms of CloakCRDT values, shared by every conversation vector.
enum CRDTJSON {
    static func id(_ id: OperationID?) -> VectorJSON {
        guard let id else { return .null }
        return .object([("replica_hex", .hex(id.replica.bytes)), ("counter", .int(id.counter))])
    }

    static func timestamp(_ value: HLCTimestamp) -> VectorJSON {
        .object([("millis", .int(value.millis)), ("logical", .int(UInt64(value.logical)))])
    }

    static func role(_ role: MessageRole) -> VectorJSON {
        switch role {
        case .user: .string("user")
        case .assistant: .string("assistant")
        case .system: .string("system")
        case .tool: .string("tool")
        }
    }

    static func state(_ state: ConversationState) -> VectorJSON {
        switch state {
        case .active: .string("active")
        case .archived: .string("archived")
        case .trashed: .string("trashed")
        }
    }

    static func field(_ field: MetadataField) -> VectorJSON {
        switch field {
        case .title: .object([("name", .string("title"))])
        case .pinned: .object([("name", .string("pinned"))])
        case .archived: .object([("name", .string("archived"))])
        case .model: .object([("name", .string("model"))])
        case .folder: .object([("name", .string("folder"))])
        case .custom(let key): .object([("name", .string("custom")), ("key", .string(key))])
        }
    }

    static func value(_ value: MetadataValue) -> VectorJSON {
        switch value {
        case .unset: .object([("type", .string("unset"))])
        case .text(let text): .object([("type", .string("text")), ("text", .string(text))])
        case .flag(let flag): .object([("type", .string("flag")), ("flag", .bool(flag))])
        case .bytes(let bytes): .object([("type", .string("bytes")), ("bytes_hex", .hex(bytes))])
        }
    }

    static func reaction(_ reaction: Reaction) -> [(String, VectorJSON)] {
        [("emoji", .string(reaction.emoji)), ("reactor_hex", .hex(reaction.reactor))]
    }

    static func ids(_ ids: [OperationID]) -> VectorJSON { .array(ids.map { id($0) }) }

    /// One operation: kind, id, counter count, timestamp, then its payload fields by name.
    static func operation(_ op: CRDTOperation) -> VectorJSON {
        let (kind, value, payload) = payload(op.payload)
        return .object(
            [
                ("kind", .string(kind)), ("kind_value", .int(value)), ("id", id(op.id)),
                ("counter_count", .int(op.counterCount)), ("timestamp", timestamp(op.timestamp)),
            ] + payload)
    }

    private static func payload(_ payload: OperationPayload) -> (String, UInt64, [(String, VectorJSON)]) {
        switch payload {
        case .createMessage(let parent, let role, let text):
            ("createMessage", 0, [("parent", id(parent)), ("role", self.role(role)), ("text", .string(text))])
        case .insertText(let message, let after, let before, let text):
            (
                "insertText", 1,
                [("message", id(message)), ("after", id(after)), ("before", id(before)), ("text", .string(text))]
            )
        case .deleteText(let message, let spans):
            (
                "deleteText", 2,
                [
                    ("message", id(message)),
                    ("spans", .array(spans.map { .object([("start", id($0.start)), ("count", .int($0.count))]) })),
                ]
            )
        case .deleteMessage(let message): ("deleteMessage", 3, [("message", id(message))])
        case .selectBranch(let parent, let child): ("selectBranch", 4, [("parent", id(parent)), ("child", id(child))])
        case .setMetadata(let field, let value):
            ("setMetadata", 5, [("field", self.field(field)), ("value", self.value(value))])
        case .addReaction(let message, let reaction):
            ("addReaction", 6, [("message", id(message))] + self.reaction(reaction))
        case .removeReaction(let message, let reaction, let observed):
            ("removeReaction", 7, [("message", id(message))] + self.reaction(reaction) + [("observed", ids(observed))])
        case .markRead(let upTo): ("markRead", 8, [("up_to", timestamp(upTo))])
        default:
            libraryPayload(payload)
        }
    }

    private static func libraryPayload(_ payload: OperationPayload) -> (String, UInt64, [(String, VectorJSON)]) {
        switch payload {
        case .addConversation(let key): ("addConversation", 16, [("key_hex", .hex(key.bytes))])
        case .removeConversation(let key, let observed):
            ("removeConversation", 17, [("key_hex", .hex(key.bytes)), ("observed", ids(observed))])
        case .setConversationState(let key, let state):
            ("setConversationState", 18, [("key_hex", .hex(key.bytes)), ("state", self.state(state))])
        case .createFolder(let name): ("createFolder", 19, [("name", .string(name))])
        case .renameFolder(let folder, let name):
            ("renameFolder", 20, [("folder", id(folder)), ("name", .string(name))])
        case .removeFolder(let folder, let observed):
            ("removeFolder", 21, [("folder", id(folder)), ("observed", ids(observed))])
        case .setSetting(let key, let value): ("setSetting", 22, [("key", .string(key)), ("value", self.value(value))])
        default: ("unknown", 255, [])
        }
    }
}
