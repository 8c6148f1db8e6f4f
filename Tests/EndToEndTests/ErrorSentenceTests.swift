import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import CloakServer
import CloakServerHTTP
@testable import CloakTransport
import Foundation
import Testing

/// Every error case a person can meet through an app or the `cloak` CLI reads as a sentence,
/// never as a Swift value (`wrongWordCount(11)`, `unknownDevice(…)`, `notConnected`).
///
/// Each `index` function below is an exhaustive switch: a new case does not compile until it
/// has the next number there, and the test then fails until `samples` holds one of it.
@Suite("Error descriptions are sentences", .timeLimit(.minutes(1)))
struct ErrorSentenceTests {
    static let conversation = ConversationID.library  // all zeros: any id does
    let device: DeviceID

    init() throws {
        device = try DeviceID(validating: [UInt8](repeating: 0xd1, count: 16), field: "device")
    }

    @Test("every ClientError case, with every nested error kind")
    func clientErrors() {
        let samples: [ClientError] = [
            .storage("the disk is full"), .noAccount, .alreadyInitialized, .server(.quotaExceeded), .notConnected, .timeout,
            .unknownConversation(Self.conversation), .invalidEdit("message 1 is not in this conversation"),
            .deviceLog(.fork(atIndex: 3)), .pairing(.expired), .pairingReused, .pairingNotCompleted,
            .recoveryWords(.wrongWordCount(11)), .wrongRecoverySecret, .noRecoveryKey, .crypto(.invalidSignature),
            .unknownDevice(device), .removedFromAccount, .missingEpochKey(4), .linkDeclined,
            .weakPassphrase(PassphraseStrength(estimating: "letmein")), .recoveryAlreadySet, .recoveryLocked(retryAfterMs: 90_000),
            .recoveryUnavailable, .recoveryInterrupted, .assistantInvitation(.checksumMismatch), .unknownAssistant(device),
            .assistantNotGranted, .notPermitted("a user message"),
        ]
        expectEveryCase(samples, count: 29, index: Self.index)
        #expect(ClientError.unknownDevice(device).description.contains(device.hex), "names the id")
        #expect(ClientError.unknownConversation(Self.conversation).description.contains(Self.conversation.hex))
    }

    @Test("every ProtocolError case (the wire's messages)")
    func protocolErrors() {
        let samples: [ProtocolError] = [
            .malformedFrame("no body"), .frameTooLarge(size: 9, limit: 4), .unsupportedVersion(9), .notAuthenticated,
            .authFailed, .unknownAccount, .deviceNotActive, .badSignature("a change set"), .invalidField("the account id"),
            .wrongAuthor, .gap(expectedSeq: 2, got: 5), .fork("another change set holds position 3"),
            .tooManyChangeSets(count: 300, limit: 256), .changeSetTooLarge(size: 9, limit: 4), .rateLimited, .quotaExceeded,
            .tooManyConnections, .handshakeTimeout, .idleTimeout, .slowConsumer, .accountExists,
            .invalidDeviceLog("the entry is not signed by a member"), .deviceLogConflict, .notFound,
            .unexpectedFrame("a push before subscribing"), .shuttingDown, .internalError, .staleSnapshot, .staleDeviceLog,
            .cursorMismatch("the server holds less than this device saw"), .staleCutoffs("a newer change set exists"),
            .accountBlocked, .recoveryLocked(retryAfterMs: 90_000), .recoveryUnavailable,
            .outOfScope("conversation 1 is not in the grant"), .notPermitted("a user message"), .grantExpired,
        ]
        expectEveryCase(samples, count: 37, index: Self.index)
        expectSentences(samples.map(\.description))
    }

    @Test("every CryptoError case")
    func cryptoErrors() {
        let samples: [CryptoError] = [
            .sodiumUnavailable, .invalidKeyLength(expected: 32, actual: 31), .invalidNonceLength(expected: 24, actual: 1),
            .invalidSeedLength(expected: 32, actual: 1), .invalidSaltLength(expected: 16, actual: 1), .invalidHashLength(9),
            .ciphertextTooShort(minimum: 40, actual: 3), .authenticationFailed, .commitmentMismatch, .invalidSignature,
            .invalidPublicKey, .lowOrderPublicKey, .sealedBoxOpenFailed, .invalidPadding,
            .paddingTooLarge(requested: 9, maximum: 4), .passwordParametersBelowFloor, .passwordParametersAboveCeiling,
            .unsupportedPasswordAlgorithm(7), .passwordHashingFailed, .streamChunkRejected, .streamTruncated,
            .streamAlreadyFinished, .invalidStreamHeader, .malformedEncoding("a key of the wrong length"),
            .invalidElementLength(expected: 32, actual: 31), .invalidElementEncoding, .identityElement,
            .inputTooLong(maximum: 65_535, actual: 70_000), .invalidDomainSeparationTagLength(0), .invalidExpandLength(0),
            .zeroScalar, .hashingFailed,
        ]
        expectEveryCase(samples, count: 32, index: Self.index)
        expectSentences(samples.map { ClientError.crypto($0).description })
    }

    @Test("recovery words, invitations, device logs and edits")
    func nestedErrors() {
        let recovery: [RecoveryError] = [.wrongWordCount(11), .unknownWord(position: 12), .badChecksum]
        let pairing: [PairingError] = [.malformedPayload, .typo, .expired, .bundleRejected]
        let assistant: [AssistantInvitationError] = [.malformed, .checksumMismatch]
        let log: [DeviceLogConsistencyError] = [
            .rollback(pinnedLength: 5, servedLength: 3), .fork(atIndex: 2), .invalid(.badSignature("an entry")),
        ]
        let replica = ReplicaID(high: 1, low: 2)
        let edits: [ConversationEditError] = [
            .unknownMessage(OperationID(replica: replica, counter: 3)), .positionOutOfRange, .emptyText, .textTooLong,
            .counterExhausted, .replicaLimitReached, .reactionNotPresent,
        ]
        let library: [LibraryEditError] = [.notInLibrary, .counterExhausted]
        expectSentences(recovery.map(\.description) + pairing.map(\.description) + log.map(\.description)
            + edits.map(\.description) + library.map(\.description) + assistant.map(\.description))
        #expect(!RecoveryError.unknownWord(position: 12).description.contains("abandon"), "never echoes a word")
        #expect(recovery.count == 3 && pairing.count == 4 && log.count == 3 && edits.count == 7 && library.count == 2
            && assistant.count == 2)
    }

    @Test("every security event kind, with what it concerns")
    func securityEvents() {
        let lines = SecurityEvent.Kind.allCases.map {
            SecurityEvent($0, conversation: Self.conversation, device: device, seq: 4, detail: "seen at cursor 9").description
        }
        expectSentences(lines)
        #expect(Set(SecurityEvent.Kind.allCases.map(\.summary)).count == SecurityEvent.Kind.allCases.count, "one sentence each")
    }

    @Test("transport failures name the server and what failed: refused, bad CA files, anything else")
    func transportErrors() async throws {
        let refused = await connectionFailure("ws://127.0.0.1:1/v1/sync")
        #expect(refused?.kind == .unreachable)
        #expect(refused?.description == "nothing accepts connections at 127.0.0.1:1 (connection refused)")
        // A peer that accepts and never answers the handshake: handshakeTimedOut below.
        var failures = [refused].compactMap { $0 }
        let root = try temporaryDirectory("transport-errors")
        defer { try? FileManager.default.removeItem(at: root) }
        let garbage = root.appendingPathComponent("garbage.pem").path
        #expect(FileManager.default.createFile(atPath: garbage, contents: Data("not a certificate\n".utf8)))
        let empty = root.appendingPathComponent("empty.pem").path
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        for path in [root.appendingPathComponent("missing.pem").path, garbage, empty] {
            do { _ = try WebSocketTransport(caFile: path) } catch {
                failures.append(error)
                #expect(error.kind == .caFile && error.description.contains(path), "\(error)")
            }
        }
        let other = TransportError(classifying: CancellationError(), url: URL(string: "wss://cloak.example:8443/v1/sync")!)
        #expect(other.kind == .other && other.description.contains("cloak.example:8443"))
        #expect(failures.count == 4)
        expectSentences((failures + [other]).map(\.description))
    }

    @Test(
        "wss:// to a plain port that never answers TLS fails within the handshake timeout, naming the server and asking whether it is TLS",
        .timeLimit(.minutes(1)))
    func handshakeTimedOut() async throws {
        let listener = try SilentListener()
        defer { listener.stop() }
        var transport = WebSocketTransport()
        transport.handshakeTimeout = .milliseconds(300)
        let clock = ContinuousClock()
        let started = clock.now
        // A host name: TLS refuses an IP address before it would send anything.
        let tls = await connectionFailure("wss://localhost:\(listener.port)/v1/sync", transport: transport)
        // Bounded by the handshake timeout, not by a caller's patience (generous for a loaded machine).
        #expect(clock.now - started < .seconds(20))
        #expect(tls?.kind == .handshakeTimeout)
        #expect(tls?.description.contains("localhost:\(listener.port)") == true, "\(String(describing: tls))")
        #expect(tls?.description.contains("is it a TLS port?") == true)
        let plain = await connectionFailure("ws://127.0.0.1:\(listener.port)/v1/sync", transport: transport)
        #expect(plain?.kind == .handshakeTimeout)
        #expect(plain?.description.contains("WebSocket handshake") == true)
        expectSentences([tls, plain].compactMap { $0?.description })
    }
}

/// A loopback TCP port that accepts connections (the kernel completes them into the backlog)
/// and never reads or writes: a stalled server, or a plain port behind a `wss://` URL.
private struct SilentListener {
    let descriptor: Int32
    let port: Int

    struct Failure: Error {}

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard fd >= 0, bound else {
            if fd >= 0 { close(fd) }
            throw Failure()
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func stop() { close(descriptor) }
}

/// The transport's error for a connection to `url`, or nil if it connected.
private func connectionFailure(_ url: String, transport: WebSocketTransport = WebSocketTransport()) async -> TransportError? {
    do {
        let connection = try await transport.connect(to: URL(string: url)!)
        await connection.close()
        return nil
    } catch {
        return error as? TransportError
    }
}

/// Fails for every text that reads like a Swift value (the CLI tests' check).
private func expectSentences(_ texts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    for text in texts {
        #expect(!text.isEmpty, sourceLocation: sourceLocation)
        #expect(swiftValueLines(text).isEmpty, "reads like a Swift value: \(text)", sourceLocation: sourceLocation)
    }
}

/// Checks that `samples` hold every case once (by `index`, numbered 0..<count), and that each
/// reads as a sentence.
private func expectEveryCase<E: CustomStringConvertible>(
    _ samples: [E], count: Int, index: (E) -> Int, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(Set(samples.map(index)) == Set(0..<count), "a case has no sample", sourceLocation: sourceLocation)
    #expect(samples.count == count, sourceLocation: sourceLocation)
    expectSentences(samples.map(\.description), sourceLocation: sourceLocation)
}
