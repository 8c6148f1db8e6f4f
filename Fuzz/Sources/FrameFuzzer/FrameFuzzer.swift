@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import CloakVectors
import Foundation
@_spi(Randomness) import CloakTesting

/// libFuzzer entry point (ADV-17): every input is decoded as a frame and, whatever the frame
/// carries, through every record constructor a peer's bytes can reach. The raw input is also
/// offered to each record decoder directly, as a relay could deliver it. Nothing may trap,
/// and what decodes must survive a re-encode unchanged (a broken invariant traps on purpose so
/// libFuzzer records the input).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FrameHarness.run(bytes)
    return 0
}

/// libFuzzer's driver (LLVM ≥ 11), called from our own entry point: SwiftPM links every
/// executable with `main` aliased to `<Target>_main`, so libFuzzer's `main` cannot be used.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("FrameFuzzer_main")
public func frameFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
}

enum FrameHarness {
    static let limits = ProtocolLimits()
    /// Items per repeated field explored per input, so one input's cost stays bounded.
    static let itemsMax = 32
    static let now: UInt64 = 1_767_225_600_000

    /// The vector account's verified log, for admission and appends.
    static let log: DeviceLog? = {
        guard let frames = try? ProtocolVectors.sampleFrames() else { return nil }
        for (_, frame) in frames {
            if case .deviceLogEntries(let list) = frame.body {
                let entries = list.entries.compactMap { try? DeviceLogEntry(wire: Array($0)) }
                return try? DeviceLog(verifying: entries)
            }
        }
        return nil
    }()
    static let key = SymmetricKey.random(using: DeterministicRandom(seed: 1))
    static let agreement = X25519PrivateKey(using: DeterministicRandom(seed: 2))
    static let signing = Ed25519PrivateKey(using: DeterministicRandom(seed: 3))
    static let pairing = PairingPayload.create(
        signingKey: signing.publicKey, agreementKey: agreement.publicKey, nowMs: now,
        random: DeterministicRandom(seed: 4))

    static func run(_ bytes: [UInt8]) {
        records(bytes)
        guard let frame = try? FrameCodec.decode(bytes, maxFrameBytes: limits.maxFrameBytes) else { return }
        let reparsed = try? FrameCodec.decode(FrameCodec.encode(frame), maxFrameBytes: Int.max)
        guard reparsed == frame else { fatalError("a decoded frame changed through encode and decode") }
        body(frame.body)
    }

    static func records(_ bytes: [UInt8]) {
        if let cs = try? ChangeSet(wire: bytes) { changeSet(cs) }
        if let entry = try? DeviceLogEntry(wire: bytes) { logEntry(entry) }
        if let m = try? FrameCodec.parse(Cloak_V1_KeyEnvelope.self, from: bytes, what: "envelope") { envelope(m) }
        if let m = try? FrameCodec.parse(Cloak_V1_Snapshot.self, from: bytes, what: "snapshot") { snapshot(m) }
        if let body = try? FrameCodec.parse(Cloak_V1_ChangeSetBody.self, from: bytes, what: "body") {
            for head in body.heads.prefix(itemsMax) { _ = try? ChainHead(message: head) }
        }
        _ = try? FrameCodec.parse(Cloak_V1_PairingOffer.self, from: bytes, what: "pairing offer")
        _ = try? FrameCodec.parse(Cloak_V1_PairingAnswer.self, from: bytes, what: "pairing answer")
        _ = try? FrameCodec.parse(Cloak_V1_PairingResult.self, from: bytes, what: "pairing result")
        let text = String(decoding: bytes, as: UTF8.self)
        _ = try? PairingPayload(text: text, nowMs: now)
        _ = try? RecoverySecret(words: text)
        _ = try? PasswordKDFParameters(decoding: bytes)
        // A relay's bytes in each pairing mailbox (PROTOCOL.md §21).
        for stage in PairingPayload.Stage.allCases { _ = try? pairing.open(bytes, for: stage) }
    }

    static func changeSet(_ cs: ChangeSet) {
        // Re-serialising the parsed fields must give the same change-set hash: the hash is over
        // canonical bytes, never over the (malleable) protobuf encoding.
        guard let m = try? FrameCodec.parse(Cloak_V1_ChangeSet.self, from: cs.wire, what: "change set"),
            let again = try? ChangeSet(wire: FrameCodec.serialize(m)), again.hash == cs.hash
        else { fatalError("a change set's hash changed through re-serialisation") }
        _ = cs.signedMessage
        _ = log?.admits(cs)
        _ = try? ChangeSetSealer.open(cs, conversationKey: key)
    }

    static func logEntry(_ entry: DeviceLogEntry) {
        guard let again = try? DeviceLogEntry(wire: entry.wire), again.hash == entry.hash else {
            fatalError("a device-log entry's hash changed through re-serialisation")
        }
        _ = try? DeviceLog(genesis: entry)
        if var log {
            _ = try? log.append(entry)
        }
    }

    static func envelope(_ m: Cloak_V1_KeyEnvelope) {
        guard let env = try? KeyEnvelope(message: m) else { return }
        guard let again = try? KeyEnvelope(message: env.message), again == env else {
            fatalError("a key envelope changed through re-serialisation")
        }
        _ = try? env.open(with: agreement, recipient: env.recipient, senderKey: signing.publicKey)
    }

    static func snapshot(_ m: Cloak_V1_Snapshot) {
        guard let snap = try? Snapshot(message: m) else { return }
        guard let again = try? Snapshot(message: snap.message), again.hash == snap.hash else {
            fatalError("a snapshot's hash changed through re-serialisation")
        }
        _ = try? snap.verifySignature(signing.publicKey)
        _ = try? SnapshotSealer.open(snap, conversationKey: key)
    }

    static func body(_ body: Cloak_V1_Frame.OneOf_Body?) {
        switch body {
        case .push(let p): p.changeSets.prefix(itemsMax).forEach { records(Array($0)) }
        case .deliver(let d): d.items.prefix(itemsMax).forEach { records(Array($0.changeSet)) }
        case .register(let r): records(Array(r.genesis))
        case .appendDeviceLog(let a): records(Array(a.entry))
        case .deviceLogEntries(let list):
            let entries = list.entries.prefix(itemsMax).compactMap { try? DeviceLogEntry(wire: Array($0)) }
            _ = try? DeviceLog(verifying: entries)
            _ = try? log?.extended(with: entries)
        case .putKeyEnvelopes(let p): p.envelopes.prefix(itemsMax).forEach(envelope)
        case .keyEnvelopes(let k): k.envelopes.prefix(itemsMax).forEach(envelope)
        case .putSnapshot(let p): snapshot(p.snapshot)
        case .snapshots(let s): s.snapshots.prefix(itemsMax).forEach(snapshot)
        case .mailboxPut(let m): records(Array(m.payload))
        case .mailboxContent(let m): records(Array(m.payload))
        case .putRecovery(let r): records(Array(r.blob.kdfParameters))
        case .recoveryBlob(let r): records(Array(r.kdfParameters))
        case .authenticate(let a):
            if let account = try? AccountID(validating: a.accountID, field: "account_id"),
                let device = try? DeviceID(validating: a.deviceID, field: "device_id")
            {
                _ = AuthChallenge.verify(
                    Array(a.signature), serverNonce: Array(repeating: 7, count: 32), account: account, device: device,
                    key: signing.publicKey)
            }
        case .error(let e): _ = ProtocolError(wireCode: e.code, message: e.message).closesConnection
        default: break
        }
    }
}
