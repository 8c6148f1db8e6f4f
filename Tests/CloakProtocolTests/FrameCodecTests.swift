import CloakCrypto
import CloakProtocol
import CloakTesting
import CloakVectors
import Foundation
import Testing

/// Framing (PROTOCOL.md §"Transport"): every frame type round-trips, the size limit is checked
/// before parsing (ADV-16), and error codes are the spec's stable numbers.
@Suite("Frame codec")
struct FrameCodecTests {
    /// Every `Frame.body` member of cloak.proto, by field name.
    static let allBodies: Set<String> = [
        "server_hello", "auth_result", "error", "push_ack", "deliver", "device_log_entries", "key_envelopes",
        "snapshots", "mailbox_content", "recovery_blob", "pong", "done", "register", "authenticate", "subscribe",
        "push", "append_device_log", "fetch_device_log", "put_key_envelopes", "fetch_key_envelopes", "put_snapshot",
        "fetch_snapshots", "mailbox_put", "mailbox_take", "put_recovery", "fetch_recovery", "ack_cursor", "ping",
        "fetch_change_sets", "recovery_evaluation", "account_notice", "recovery_evaluate", "reset_recovery_lockout",
    ]

    @Test("every frame type round-trips through encode and decode with its request id")
    func roundTrips() throws {
        let frames = try ProtocolVectors.sampleFrames()
        #expect(Set(frames.map(\.name)) == Self.allBodies && frames.count == Self.allBodies.count)
        for (name, frame) in frames {
            let bytes = FrameCodec.encode(frame)
            let decoded = try FrameCodec.decode(bytes, maxFrameBytes: ProtocolLimits().maxFrameBytes)
            #expect(decoded == frame, "\(name)")
            #expect(decoded.body?.name == name && decoded.requestID == frame.requestID)
            #expect(FrameCodec.encode(decoded) == bytes)
        }
        TestData.report("frames: \(frames.count) body types round-trip")
    }

    @Test("records inside the sample frames decode with their constructors")
    func embeddedRecords() throws {
        for (_, frame) in try ProtocolVectors.sampleFrames() {
            switch frame.body {
            case .push(let push): for wire in push.changeSets { _ = try ChangeSet(wire: Array(wire)) }
            case .deviceLogEntries(let list):
                _ = try DeviceLog(verifying: list.entries.map { try DeviceLogEntry(wire: Array($0)) })
            case .keyEnvelopes(let list): for e in list.envelopes { _ = try KeyEnvelope(message: e) }
            case .snapshots(let list): for s in list.snapshots { _ = try Snapshot(message: s) }
            default: break
            }
        }
    }

    static func mailboxFrame(totalBytes: Int) -> [UInt8] {
        var put = Cloak_V1_MailboxPut()
        put.mailboxID = Data([UInt8](repeating: 1, count: 16))
        // Try shorter payloads until the whole frame is exactly `totalBytes` (length varints vary).
        for payload in stride(from: totalBytes, through: 0, by: -1) {
            put.payload = Data([UInt8](repeating: 2, count: payload))
            let bytes = FrameCodec.encode(.mailboxPut(put), requestID: 1)
            if bytes.count == totalBytes { return bytes }
        }
        return []
    }

    @Test("ADV-16 frames at limit − 1 and at the limit decode; limit + 1 is refused before parsing")
    func sizeLimit() throws {
        let limit = 4096
        for size in [limit - 1, limit] {
            let bytes = Self.mailboxFrame(totalBytes: size)
            #expect(bytes.count == size)
            #expect(try FrameCodec.decode(bytes, maxFrameBytes: limit).body?.name == "mailbox_put")
        }
        let over = Self.mailboxFrame(totalBytes: limit + 1)
        #expect(throws: ProtocolError.frameTooLarge(size: limit + 1, limit: limit)) {
            try FrameCodec.decode(over, maxFrameBytes: limit)
        }
        // Refused on size alone: the same number of bytes that are not even protobuf.
        #expect(throws: ProtocolError.frameTooLarge(size: limit + 1, limit: limit)) {
            try FrameCodec.decode([UInt8](repeating: 0xff, count: limit + 1), maxFrameBytes: limit)
        }
    }

    /// The stable numbers of PROTOCOL.md §"Errors" and whether each closes the connection.
    static let errorTable: [(ProtocolError, Int, Bool)] = [
        (.malformedFrame("x"), 1, true), (.frameTooLarge(size: 2, limit: 1), 2, true),
        (.unsupportedVersion(9), 3, true),
        (.notAuthenticated, 4, true), (.authFailed, 5, true), (.unknownAccount, 6, true), (.deviceNotActive, 7, true),
        (.badSignature("x"), 8, false), (.invalidField("x"), 9, false), (.wrongAuthor, 10, false),
        (.gap(expectedSeq: 2, got: 3), 11, false), (.fork("x"), 12, false),
        (.tooManyChangeSets(count: 2, limit: 1), 13, false),
        (.changeSetTooLarge(size: 2, limit: 1), 14, false), (.rateLimited, 15, false), (.quotaExceeded, 16, false),
        (.tooManyConnections, 17, true), (.handshakeTimeout, 18, true), (.idleTimeout, 19, true),
        (.slowConsumer, 20, true),
        (.accountExists, 21, false), (.invalidDeviceLog("x"), 22, false), (.deviceLogConflict, 23, false),
        (.notFound, 24, false), (.unexpectedFrame("x"), 25, false), (.shuttingDown, 26, true),
        (.internalError, 27, false),
        (.staleSnapshot, 28, false),
        (.staleDeviceLog, 29, false),
        (.cursorMismatch("x"), 30, false),
        (.staleCutoffs("x"), 31, false),
        (.accountBlocked, 32, true),
        (.outOfScope("x"), 37, false), (.notPermitted("x"), 38, false), (.grantExpired, 39, true),
    ]

    @Test("error codes: stable numbers, closing flags, and error frames that round-trip")
    func errorCodes() throws {
        #expect(Set(Self.errorTable.map(\.1)) == Set(1...32).union(37...39))
        for (error, code, closes) in Self.errorTable {
            #expect(error.wireCode.rawValue == code, "\(error)")
            #expect(error.closesConnection == closes, "\(error)")
            let frame = try FrameCodec.decode(FrameCodec.encodeError(error, requestID: 5), maxFrameBytes: 1024)
            guard case .error(let body) = frame.body else { Issue.record("not an error frame"); continue }
            #expect(frame.requestID == 5 && body.code == error.wireCode && body.message == error.message)
            #expect(ProtocolError(wireCode: body.code, message: body.message).wireCode == error.wireCode)
        }
        #expect(ProtocolError(wireCode: .unspecified, message: "?").wireCode == .malformedFrame)
        #expect(ProtocolError(wireCode: .UNRECOGNIZED(99), message: "?").wireCode == .malformedFrame)
    }

    @Test("limits announced in ServerHello match the defaults of PROTOCOL.md §Limits")
    func limits() {
        let wire = ProtocolLimits().wire
        #expect(wire.maxFrameBytes == 4 << 20 && wire.maxChangeSetsPerPush == 256 && wire.maxChangeSetBytes == 1 << 20)
        #expect(wire.maxPushesPerSecond == 200 && wire.maxAccountBytes == 8 << 30 && wire.maxCatchUpBatch == 1000)
    }
}
