extension OperationBatch {
    /// Decodes a batch written by `encode`. Total and bounded: every count is checked against
    /// `DecodingLimits` and the remaining bytes before anything is allocated for it, text is
    /// validated as UTF-8, and bytes after the last operation are an error.
    public static func decode(_ bytes: [UInt8]) throws(CRDTDecodingError) -> [CRDTOperation] {
        var reader = ByteReader(bytes)
        let ops = try decode(from: &reader)
        try reader.expectEnd()
        return ops
    }

    static func decode(from reader: inout ByteReader) throws(CRDTDecodingError) -> [CRDTOperation] {
        for expected in magic where try reader.byte() != expected {
            throw .badMagic
        }
        let version = try reader.byte()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let replicaCount = try reader.count(
            limit: DecodingLimits.replicasPerEncodingMax, field: .replicasPerEncoding, minimumElementBytes: 16)
        var replicas: [ReplicaID] = []
        replicas.reserveCapacity(replicaCount)
        var seen: Set<ReplicaID> = []
        for _ in 0..<replicaCount {
            let replica = try reader.replicaID()
            guard seen.insert(replica).inserted else { throw .replicaTableNotCanonical }
            replicas.append(replica)
        }
        let opCount = try reader.count(
            limit: DecodingLimits.operationsPerBatchMax, field: .operationsPerBatch, minimumElementBytes: 5)
        var decoder = BatchDecoder(replicas: replicas)
        var ops: [CRDTOperation] = []
        ops.reserveCapacity(opCount)
        for _ in 0..<opCount {
            ops.append(try decoder.read(from: &reader))
        }
        return ops
    }
}

/// Per-batch decoding state, mirroring `BatchEncoder`.
struct BatchDecoder {
    let replicas: [ReplicaID]
    var previousEnd: UInt64 = 0
    var previousMillis: UInt64 = 0

    func replica(_ index: UInt64) throws(CRDTDecodingError) -> ReplicaID {
        guard index < UInt64(replicas.count) else { throw .replicaIndexOutOfRange }
        return replicas[Int(index)]
    }

    func optionalRef(_ reader: inout ByteReader, author: OperationID) throws(CRDTDecodingError) -> OperationID? {
        let tag = try reader.varint()
        guard tag > 0 else { return nil }
        let replica = try replica(tag - 1)
        if replica == author.replica {
            let delta = try reader.signedVarint()
            return OperationID(replica: replica, counter: author.counter &- UInt64(bitPattern: delta))
        }
        return OperationID(replica: replica, counter: try reader.varint())
    }

    func ref(_ reader: inout ByteReader, author: OperationID) throws(CRDTDecodingError) -> OperationID {
        guard let id = try optionalRef(&reader, author: author) else { throw .requiredReferenceMissing }
        return id
    }

    func refs(_ reader: inout ByteReader, author: OperationID) throws(CRDTDecodingError) -> [OperationID] {
        let count = try reader.count(
            limit: DecodingLimits.spansPerOperationMax, field: .spansPerOperation, minimumElementBytes: 2)
        var result: [OperationID] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try ref(&reader, author: author)) }
        return result
    }

    mutating func read(from reader: inout ByteReader) throws(CRDTDecodingError) -> CRDTOperation {
        let kind = try reader.byte()
        let author = try replica(try reader.varint())
        let counter = previousEnd &+ UInt64(bitPattern: try reader.signedVarint())
        let millis = previousMillis &+ UInt64(bitPattern: try reader.signedVarint())
        let logical = try reader.varint()
        guard logical <= UInt64(UInt32.max) else { throw .varintOverflow }
        let id = OperationID(replica: author, counter: counter)
        let timestamp = HLCTimestamp(millis: millis, logical: UInt32(logical))
        let (payload, count) = try readPayload(kind: kind, id: id, from: &reader)
        guard count > 0, !counter.addingReportingOverflow(count - 1).overflow else { throw .invalidSpan }
        previousEnd = counter &+ count
        previousMillis = millis
        return CRDTOperation(id: id, timestamp: timestamp, payload: payload, counterCount: count)
    }

    private func readPayload(
        kind: UInt8, id: OperationID, from reader: inout ByteReader
    )
        throws(CRDTDecodingError) -> (OperationPayload, UInt64)
    {
        switch kind {
        case 0:
            let parent = try optionalRef(&reader, author: id)
            let role = try Self.role(try reader.byte())
            let (text, scalars) = try reader.string()
            return (.createMessage(parent: parent, role: role, text: text), 1 + UInt64(scalars))
        case 1:
            let message = try ref(&reader, author: id)
            let after = try optionalRef(&reader, author: id)
            let before = try optionalRef(&reader, author: id)
            let (text, scalars) = try reader.string()
            return (.insertText(message: message, after: after, before: before, text: text), UInt64(scalars))
        case 2:
            let count = try reader.bounded(limit: DecodingLimits.spansPerOperationMax, field: .spansPerOperation)
            let message = try ref(&reader, author: id)
            let spanCount = try reader.count(
                limit: DecodingLimits.spansPerOperationMax, field: .spansPerOperation, minimumElementBytes: 3)
            var spans: [IDSpan] = []
            spans.reserveCapacity(spanCount)
            for _ in 0..<spanCount {
                let start = try ref(&reader, author: id)
                let length = try reader.varint()
                guard length > 0, !start.counter.addingReportingOverflow(length - 1).overflow else {
                    throw .invalidSpan
                }
                spans.append(IDSpan(start: start, count: length))
            }
            return (.deleteText(message: message, spans: spans), UInt64(count))
        case 3:
            return (.deleteMessage(try ref(&reader, author: id)), 1)
        case 4:
            let parent = try optionalRef(&reader, author: id)
            return (.selectBranch(parent: parent, child: try ref(&reader, author: id)), 1)
        case 5:
            let field = try Self.field(&reader)
            return (.setMetadata(field, try Self.value(&reader)), 1)
        case 6:
            let message = try ref(&reader, author: id)
            return (.addReaction(message: message, reaction: try Self.reaction(&reader)), 1)
        case 7:
            let message = try ref(&reader, author: id)
            let reaction = try Self.reaction(&reader)
            return (.removeReaction(message: message, reaction: reaction, observed: try refs(&reader, author: id)), 1)
        case 8:
            return (.markRead(upTo: try reader.timestamp()), 1)
        default:
            return (try readLibraryPayload(kind: kind, id: id, from: &reader), 1)
        }
    }

    private func readLibraryPayload(
        kind: UInt8, id: OperationID, from reader: inout ByteReader
    )
        throws(CRDTDecodingError) -> OperationPayload
    {
        switch kind {
        case 16:
            return .addConversation(ConversationKey(raw: try reader.replicaID()))
        case 17:
            let key = ConversationKey(raw: try reader.replicaID())
            return .removeConversation(key, observed: try refs(&reader, author: id))
        case 18:
            let key = ConversationKey(raw: try reader.replicaID())
            let raw = try reader.byte()
            guard let state = ConversationState(rawValue: raw) else { throw .unknownEnumerationValue(raw) }
            return .setConversationState(key, state)
        case 19:
            return .createFolder(name: try reader.string().text)
        case 20:
            let folder = try ref(&reader, author: id)
            return .renameFolder(folder, name: try reader.string().text)
        case 21:
            let folder = try ref(&reader, author: id)
            return .removeFolder(folder, observed: try refs(&reader, author: id))
        case 22:
            let key = try reader.string().text
            return .setSetting(key: key, value: try Self.value(&reader))
        default:
            throw .unknownOperationKind(kind)
        }
    }

    static func role(_ raw: UInt8) throws(CRDTDecodingError) -> MessageRole {
        guard let role = MessageRole(rawValue: raw) else { throw .unknownEnumerationValue(raw) }
        return role
    }

    static func reaction(_ reader: inout ByteReader) throws(CRDTDecodingError) -> Reaction {
        let emoji = try reader.string().text
        return Reaction(emoji: emoji, reactor: try reader.lengthPrefixedBytes(limit: DecodingLimits.bytesFieldMax))
    }

    static func field(_ reader: inout ByteReader) throws(CRDTDecodingError) -> MetadataField {
        let tag = try reader.byte()
        switch tag {
        case 0: return .title
        case 1: return .pinned
        case 2: return .archived
        case 3: return .model
        case 4: return .folder
        case 5: return .custom(try reader.string().text)
        default: throw .unknownEnumerationValue(tag)
        }
    }

    static func value(_ reader: inout ByteReader) throws(CRDTDecodingError) -> MetadataValue {
        let tag = try reader.byte()
        switch tag {
        case 0: return .unset
        case 1: return .text(try reader.string().text)
        case 2: return .flag(false)
        case 3: return .flag(true)
        case 4: return .bytes(try reader.lengthPrefixedBytes(limit: DecodingLimits.bytesFieldMax))
        default: throw .unknownEnumerationValue(tag)
        }
    }
}
