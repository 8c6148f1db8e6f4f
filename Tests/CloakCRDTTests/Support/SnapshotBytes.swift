import CloakCRDT

/// Hand-built conversation snapshots (format version 2, see `ConversationDocument.snapshot()`)
/// for the malformed-input tests: each section is written from its parts, so one test can
/// break exactly one field.
struct SnapshotBytes {
    var version: UInt8 = 2
    var replicas: [ReplicaID] = [testReplicaID(1)]
    var content: [UInt8] = []
    var records: [[UInt8]] = []
    /// Overrides the message count (default: the number of records).
    var messageCount: UInt64?

    static let user: UInt8 = 0x00
    static let deleted: UInt8 = 0x04
    static let hasReactions: UInt8 = 0x08
    static let plain: UInt8 = 0x10
    static let runList: UInt8 = 0x20

    var encoded: [UInt8] {
        var out = Array("CKCS".utf8) + [version]
        out += Self.varint(UInt64(replicas.count))
        for replica in replicas { out += replica.bytes }
        out += Self.varint(0)  // applied
        out += Self.varint(UInt64(content.count)) + content
        out += Self.varint(messageCount ?? UInt64(records.count))
        for record in records { out += record }
        out += [0, 0, 0]  // branches, metadata, markers
        let pending = OperationBatch.encode([], coalescing: false)
        return out + Self.varint(UInt64(pending.count)) + pending
    }

    /// A message record: flags, author index, counter, parent distance, zig-zag millis delta,
    /// logical, then the text and reactions as `tail`.
    static func record(
        _ flags: UInt8, counter: UInt64, replica: UInt64 = 0, parentDistance: UInt64 = 0, millisDelta: Int64 = 0,
        logical: UInt64 = 0, tail: [UInt8] = []
    ) -> [UInt8] {
        [flags] + varint(replica) + varint(counter) + varint(parentDistance)
            + varint(UInt64(bitPattern: (millisDelta << 1) ^ (millisDelta >> 63))) + varint(logical) + tail
    }

    /// A plain text: scalar count, then UTF-8 bytes beyond one per scalar.
    static func plainText(scalars: UInt64, extraBytes: UInt64 = 0) -> [UInt8] {
        varint(scalars) + varint(extraBytes)
    }

    /// Reactions: count, then per reaction emoji, reactor and tags (replica index, counter).
    static func reactions(_ entries: [(emoji: String, reactor: [UInt8], tags: [(UInt64, UInt64)])]) -> [UInt8] {
        var out = varint(UInt64(entries.count))
        for entry in entries {
            out += varint(UInt64(entry.emoji.utf8.count)) + Array(entry.emoji.utf8)
            out += varint(UInt64(entry.reactor.count)) + entry.reactor
            out += varint(UInt64(entry.tags.count))
            for (replica, counter) in entry.tags { out += varint(replica) + varint(counter) }
        }
        return out
    }

    static func varint(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
        return out
    }
}
