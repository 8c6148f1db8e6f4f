public import SwiftProtobuf

/// Encodes and decodes the one-`Frame`-per-WebSocket-message framing of PROTOCOL.md
/// §"Transport". Decoding is total: every input either yields a frame with a known body or
/// throws a ``ProtocolError``; the size limit is checked before any parsing, and protobuf
/// nesting is capped, so hostile input cannot make it allocate more than its own size or
/// recurse deeply (ADV-16, ADV-17; `FrameCodecTests` and `Fuzz/FrameFuzzer`).
///
/// ```swift
/// let bytes = try FrameCodec.encode(.ping(Cloak_V1_Ping()), requestID: 7)
/// let frame = try FrameCodec.decode(bytes, maxFrameBytes: limits.maxFrameBytes)
/// ```
public enum FrameCodec {
    static let decodingOptions: BinaryDecodingOptions = {
        var options = BinaryDecodingOptions()
        // Frames nest at most 4 deep (Frame → Deliver → StoredChangeSet → bytes); 8 leaves room
        // while stopping stack-exhaustion inputs.
        options.messageDepthLimit = 8
        options.discardUnknownFields = true
        return options
    }()

    /// Parses one frame, enforcing `maxFrameBytes` first.
    public static func decode(_ bytes: [UInt8], maxFrameBytes: Int) throws(ProtocolError) -> Cloak_V1_Frame {
        guard bytes.count <= maxFrameBytes else { throw .frameTooLarge(size: bytes.count, limit: maxFrameBytes) }
        let frame: Cloak_V1_Frame
        do {
            frame = try Cloak_V1_Frame(serializedBytes: bytes, options: decodingOptions)
        } catch {
            throw .malformedFrame(describe(error))
        }
        guard frame.body != nil else { throw .malformedFrame("no known frame body") }
        return frame
    }

    /// Serialises a frame with the given body.
    public static func encode(_ body: Cloak_V1_Frame.OneOf_Body, requestID: UInt64 = 0) -> [UInt8] {
        var frame = Cloak_V1_Frame()
        frame.requestID = requestID
        frame.body = body
        return encode(frame)
    }

    /// Serialises a frame. Proto3 messages without required fields always serialise.
    public static func encode(_ frame: Cloak_V1_Frame) -> [UInt8] {
        serialize(frame)
    }

    /// An error frame.
    public static func encodeError(_ error: ProtocolError, requestID: UInt64 = 0) -> [UInt8] {
        var body = Cloak_V1_Error()
        body.code = error.wireCode
        body.message = error.message
        body.retryAfterMs = error.retryAfterMs
        return encode(.error(body), requestID: requestID)
    }

    /// Serialises any message; our messages have no required fields, so this cannot fail.
    public static func serialize(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        (try? message.serializedBytes()) ?? []
    }

    /// Parses an embedded message (a change set inside a push, an entry inside a log) with the
    /// same depth cap.
    public static func parse<M: SwiftProtobuf.Message>(_ type: M.Type, from bytes: [UInt8], what: String)
        throws(ProtocolError) -> M
    {
        do {
            return try M(serializedBytes: bytes, options: decodingOptions)
        } catch {
            throw .invalidField("\(what) is not valid protobuf (\(describe(error)))")
        }
    }

    static func describe(_ error: any Error) -> String {
        guard let decoding = error as? BinaryDecodingError else { return "undecodable" }
        switch decoding {
        case .truncated: return "truncated"
        case .malformedProtobuf: return "malformed protobuf"
        case .messageDepthLimit: return "nesting too deep"
        case .invalidUTF8: return "invalid UTF-8"
        case .trailingGarbage: return "trailing garbage"
        default: return "undecodable"
        }
    }
}

extension Cloak_V1_Frame.OneOf_Body {
    /// The body's name, for logs and errors (never its contents).
    public var name: String {
        switch self {
        case .serverHello: "server_hello"
        case .authResult: "auth_result"
        case .error: "error"
        case .pushAck: "push_ack"
        case .deliver: "deliver"
        case .deviceLogEntries: "device_log_entries"
        case .keyEnvelopes: "key_envelopes"
        case .snapshots: "snapshots"
        case .mailboxContent: "mailbox_content"
        case .recoveryBlob: "recovery_blob"
        case .pong: "pong"
        case .done: "done"
        case .chainHeads: "chain_heads"
        case .recoveryEvaluation: "recovery_evaluation"
        case .accountNotice: "account_notice"
        case .register: "register"
        case .authenticate: "authenticate"
        case .subscribe: "subscribe"
        case .push: "push"
        case .appendDeviceLog: "append_device_log"
        case .fetchDeviceLog: "fetch_device_log"
        case .putKeyEnvelopes: "put_key_envelopes"
        case .fetchKeyEnvelopes: "fetch_key_envelopes"
        case .putSnapshot: "put_snapshot"
        case .fetchSnapshots: "fetch_snapshots"
        case .mailboxPut: "mailbox_put"
        case .mailboxTake: "mailbox_take"
        case .putRecovery: "put_recovery"
        case .fetchRecovery: "fetch_recovery"
        case .ackCursor: "ack_cursor"
        case .ping: "ping"
        case .fetchChangeSets: "fetch_change_sets"
        case .fetchHeads: "fetch_heads"
        case .recoveryEvaluate: "recovery_evaluate"
        case .resetRecoveryLockout: "reset_recovery_lockout"
        }
    }
}
