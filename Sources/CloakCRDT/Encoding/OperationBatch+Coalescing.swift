extension OperationBatch {
    /// Merges consecutive operations that continue each other into one, as diamond-types
    /// stores runs: an insert whose characters directly follow the previous insert's (same
    /// writer, next counters, left origin = the previous last character, same right origin)
    /// joins it, streamed appends join the `createMessage` that started the reply, and
    /// consecutive deletions of one message by one writer become one deletion with merged
    /// spans. Every character keeps its id and origins, so applying the result gives exactly
    /// the state the originals give; only the per-operation timestamps of the merged text
    /// operations are dropped (text never reads them). Text is accumulated in place, so
    /// 10,000 streamed chunks coalesce in linear time.
    public static func coalesce(_ ops: [CRDTOperation]) -> [CRDTOperation] {
        var result: [CRDTOperation] = []
        result.reserveCapacity(ops.count)
        var open: OpenRun?
        for op in ops {
            // Optional chaining mutates in place, keeping the accumulated text unique.
            if open?.absorb(op) == true { continue }
            if let run = open { result.append(run.operation) }
            open = OpenRun(op)
            if open == nil { result.append(op) }
        }
        if let run = open { result.append(run.operation) }
        return result
    }
}

/// A text or deletion operation being extended by the operations that continue it.
private struct OpenRun {
    enum Kind {
        case create(parent: MessageID?, role: MessageRole)
        case insert(after: OperationID?)
        case delete(spans: [IDSpan])
    }

    let first: CRDTOperation
    let message: MessageID
    let before: OperationID?
    var kind: Kind
    var text: String
    var counterCount: UInt64

    init?(_ op: CRDTOperation) {
        first = op
        counterCount = op.counterCount
        switch op.payload {
        case .createMessage(let parent, let role, let initial):
            (message, before, kind, text) = (op.id, nil, .create(parent: parent, role: role), initial)
        case .insertText(let target, let after, let right, let inserted):
            (message, before, kind, text) = (target, right, .insert(after: after), inserted)
        case .deleteText(let target, let spans):
            (message, before, kind, text) = (target, nil, .delete(spans: spans), "")
        default:
            return nil
        }
    }

    var nextCounter: UInt64 { first.id.counter &+ counterCount }

    /// The character a continuing insert must name as its left origin.
    var lastCharacter: OperationID? {
        if case .create = kind, counterCount == 1 { return nil }
        return first.id.advanced(by: counterCount &- 1)
    }

    mutating func absorb(_ op: CRDTOperation) -> Bool {
        guard op.id.replica == first.id.replica, op.id.counter == nextCounter else { return false }
        let (sum, overflow) = counterCount.addingReportingOverflow(op.counterCount)
        guard !overflow else { return false }
        switch (kind, op.payload) {
        case (.create, .insertText(let target, let after, let right, let inserted)),
            (.insert, .insertText(let target, let after, let right, let inserted)):
            guard target == message, after == lastCharacter, right == before, !inserted.isEmpty else { return false }
            text += inserted
        case (.delete(var spans), .deleteText(let target, let more)):
            guard target == message else { return false }
            kind = .delete(spans: [])  // release the old reference so `spans` is unique
            for span in more { Self.appendSpan(span, to: &spans) }
            kind = .delete(spans: spans)
        default:
            return false
        }
        counterCount = sum
        return true
    }

    private static func appendSpan(_ span: IDSpan, to spans: inout [IDSpan]) {
        if let last = spans.last, last.start.replica == span.start.replica {
            if last.start.counter &+ last.count == span.start.counter {
                spans[spans.count - 1].count += span.count
                return
            }
            if span.start.counter &+ span.count == last.start.counter {
                spans[spans.count - 1] = IDSpan(start: span.start, count: last.count + span.count)
                return
            }
        }
        spans.append(span)
    }

    var operation: CRDTOperation {
        let payload: OperationPayload
        switch kind {
        case .create(let parent, let role):
            payload = .createMessage(parent: parent, role: role, text: text)
        case .insert(let after):
            payload = .insertText(message: message, after: after, before: before, text: text)
        case .delete(let spans):
            payload = .deleteText(message: message, spans: spans)
        }
        return CRDTOperation(id: first.id, timestamp: first.timestamp, payload: payload, counterCount: counterCount)
    }
}
