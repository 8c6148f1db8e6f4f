/// The compact binary encoding of operation batches: the plaintext of a change set.
///
/// ```swift
/// let bytes = OperationBatch.encode(ops)              // coalesces typing and streaming runs
/// let decoded = try OperationBatch.decode(bytes)      // throws CRDTDecodingError, never traps
/// ```
///
/// Format (version 1; all integers LEB128 varints unless noted; "zz" is zig-zag):
/// ```
/// "CKOB" 0x01
/// replicaCount, replicaCount × 16-byte ReplicaID      (first-appearance order, no repeats)
/// opCount, then per operation:
///   kind u8 · author (replica index) · counter as zz delta from the previous op's end
///   · timestamp millis as zz delta from the previous op's · logical
///   · payload (below)
/// ref      = (replica index + 1, 0 = none) · counter (zz delta from the op's counter when
///            the replica is the op's author, else absolute)
/// string   = byte length · UTF-8 bytes (validated)
/// 0 createMessage   ref parent · role u8 · string text
/// 1 insertText      ref message · ref after · ref before · string text (non-empty)
/// 2 deleteText      counterCount · ref message · spanCount · (ref start · count)*
/// 3 deleteMessage   ref message
/// 4 selectBranch    ref parent · ref child
/// 5 setMetadata     field (u8 0 title,1 pinned,2 archived,3 model,4 folder,5 custom+string) · value
/// 6 addReaction     ref message · string emoji · bytes reactor
/// 7 removeReaction  ref message · string emoji · bytes reactor · count · ref*
/// 8 markRead        timestamp (millis · logical)
/// 16 addConversation 16-byte key        17 removeConversation key · count · ref*
/// 18 setConversationState key · u8      19 createFolder string
/// 20 renameFolder ref · string          21 removeFolder ref · count · ref*
/// 22 setSetting string key · value
/// value    = u8 0 unset | 1 text string | 2 false | 3 true | 4 bytes (length · bytes)
/// ```
/// A text operation's counter count is its scalar count (plus one for `createMessage`) and
/// is not written; `deleteText` writes it because coalesced deletions consume several.
public enum OperationBatch {
    static let magic: [UInt8] = Array("CKOB".utf8)
    static let version: UInt8 = 1

    /// Encodes operations; with `coalescing` (the default) consecutive operations that
    /// continue each other (typed or streamed characters, repeated deletions) are merged
    /// first, which never changes the state they produce (see `coalesce`).
    public static func encode(_ ops: [CRDTOperation], coalescing: Bool = true) -> [UInt8] {
        let list = coalescing ? coalesce(ops) : ops
        var encoder = BatchEncoder()
        for op in list { encoder.collectReplicas(op) }
        var writer = ByteWriter(capacity: 16 + 16 * encoder.replicas.count + 24 * list.count)
        writer.bytes.append(contentsOf: magic)
        writer.byte(version)
        writer.varint(encoder.replicas.count)
        for replica in encoder.replicas { writer.replicaID(replica) }
        writer.varint(list.count)
        for op in list { encoder.write(op, to: &writer) }
        return writer.bytes
    }
}

/// Per-batch encoding state: the replica table and the delta bases.
struct BatchEncoder {
    var replicas: [ReplicaID] = []
    var indices: [ReplicaID: Int] = [:]
    var previousEnd: UInt64 = 0
    var previousMillis: UInt64 = 0

    mutating func note(_ replica: ReplicaID) {
        if indices[replica] == nil {
            indices[replica] = replicas.count
            replicas.append(replica)
        }
    }

    mutating func collectReplicas(_ op: CRDTOperation) {
        note(op.id.replica)
        op.payload.forEachReference { note($0.replica) }
    }

    func index(_ replica: ReplicaID) -> Int { indices[replica] ?? 0 }

    func ref(_ id: OperationID?, op: CRDTOperation, to writer: inout ByteWriter) {
        guard let id else {
            writer.varint(UInt64(0))
            return
        }
        writer.varint(index(id.replica) + 1)
        if id.replica == op.id.replica {
            writer.signedVarint(Int64(bitPattern: op.id.counter &- id.counter))
        } else {
            writer.varint(id.counter)
        }
    }

    mutating func write(_ op: CRDTOperation, to writer: inout ByteWriter) {
        writer.byte(op.payload.kindTag)
        writer.varint(index(op.id.replica))
        writer.signedVarint(Int64(bitPattern: op.id.counter &- previousEnd))
        writer.signedVarint(Int64(bitPattern: op.timestamp.millis &- previousMillis))
        writer.varint(UInt64(op.timestamp.logical))
        previousEnd = op.id.counter &+ op.counterCount
        previousMillis = op.timestamp.millis
        writePayload(op, to: &writer)
    }

    private func writePayload(_ op: CRDTOperation, to writer: inout ByteWriter) {
        switch op.payload {
        case .createMessage(let parent, let role, let text):
            ref(parent, op: op, to: &writer)
            writer.byte(role.rawValue)
            writer.string(text)
        case .insertText(let message, let after, let before, let text):
            ref(message, op: op, to: &writer)
            ref(after, op: op, to: &writer)
            ref(before, op: op, to: &writer)
            writer.string(text)
        case .deleteText(let message, let spans):
            writer.varint(op.counterCount)
            ref(message, op: op, to: &writer)
            writer.varint(spans.count)
            for span in spans {
                ref(span.start, op: op, to: &writer)
                writer.varint(span.count)
            }
        case .deleteMessage(let message):
            ref(message, op: op, to: &writer)
        case .selectBranch(let parent, let child):
            ref(parent, op: op, to: &writer)
            ref(child, op: op, to: &writer)
        case .setMetadata(let field, let value):
            Self.writeField(field, to: &writer)
            Self.writeValue(value, to: &writer)
        case .addReaction(let message, let reaction):
            ref(message, op: op, to: &writer)
            writer.string(reaction.emoji)
            writer.lengthPrefixed(reaction.reactor)
        case .removeReaction(let message, let reaction, let observed):
            ref(message, op: op, to: &writer)
            writer.string(reaction.emoji)
            writer.lengthPrefixed(reaction.reactor)
            refs(observed, op: op, to: &writer)
        case .markRead(let upTo):
            writer.timestamp(upTo)
        default:
            writeLibraryPayload(op, to: &writer)
        }
    }

    private func writeLibraryPayload(_ op: CRDTOperation, to writer: inout ByteWriter) {
        switch op.payload {
        case .addConversation(let key):
            writer.replicaID(key.raw)
        case .removeConversation(let key, let observed):
            writer.replicaID(key.raw)
            refs(observed, op: op, to: &writer)
        case .setConversationState(let key, let state):
            writer.replicaID(key.raw)
            writer.byte(state.rawValue)
        case .createFolder(let name):
            writer.string(name)
        case .renameFolder(let folder, let name):
            ref(folder, op: op, to: &writer)
            writer.string(name)
        case .removeFolder(let folder, let observed):
            ref(folder, op: op, to: &writer)
            refs(observed, op: op, to: &writer)
        case .setSetting(let key, let value):
            writer.string(key)
            Self.writeValue(value, to: &writer)
        default:
            break
        }
    }

    private func refs(_ ids: [OperationID], op: CRDTOperation, to writer: inout ByteWriter) {
        writer.varint(ids.count)
        for id in ids { ref(id, op: op, to: &writer) }
    }

    static func writeField(_ field: MetadataField, to writer: inout ByteWriter) {
        switch field {
        case .title: writer.byte(0)
        case .pinned: writer.byte(1)
        case .archived: writer.byte(2)
        case .model: writer.byte(3)
        case .folder: writer.byte(4)
        case .custom(let key):
            writer.byte(5)
            writer.string(key)
        }
    }

    static func writeValue(_ value: MetadataValue, to writer: inout ByteWriter) {
        switch value {
        case .unset: writer.byte(0)
        case .text(let text):
            writer.byte(1)
            writer.string(text)
        case .flag(let flag): writer.byte(flag ? 3 : 2)
        case .bytes(let bytes):
            writer.byte(4)
            writer.lengthPrefixed(bytes)
        }
    }
}

extension OperationPayload {
    var kindTag: UInt8 {
        switch self {
        case .createMessage: 0
        case .insertText: 1
        case .deleteText: 2
        case .deleteMessage: 3
        case .selectBranch: 4
        case .setMetadata: 5
        case .addReaction: 6
        case .removeReaction: 7
        case .markRead: 8
        case .addConversation: 16
        case .removeConversation: 17
        case .setConversationState: 18
        case .createFolder: 19
        case .renameFolder: 20
        case .removeFolder: 21
        case .setSetting: 22
        }
    }

    /// Every operation id the payload names.
    func forEachReference(_ body: (OperationID) -> Void) {
        switch self {
        case .createMessage(let parent, _, _): parent.map(body)
        case .insertText(let message, let after, let before, _):
            body(message)
            after.map(body)
            before.map(body)
        case .deleteText(let message, let spans):
            body(message)
            spans.forEach { body($0.start) }
        case .deleteMessage(let message), .addReaction(let message, _): body(message)
        case .selectBranch(let parent, let child):
            parent.map(body)
            body(child)
        case .removeReaction(let message, _, let observed):
            body(message)
            observed.forEach(body)
        case .removeConversation(_, let observed): observed.forEach(body)
        case .renameFolder(let folder, _): body(folder)
        case .removeFolder(let folder, let observed):
            body(folder)
            observed.forEach(body)
        case .setMetadata, .markRead, .addConversation, .setConversationState, .createFolder, .setSetting: break
        }
    }
}
