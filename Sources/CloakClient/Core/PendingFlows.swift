import CloakCrypto
import CloakProtocol

/// The parts of linking and recovery a crash must not lose, kept in the local store (sealed
/// under the storage key) from the step that makes them matter until the flow is done, so a
/// reopened engine resumes the flow or cleanly restarts it (PROTOCOL.md §21, §22).
///
/// - ``PendingLinkState``: a new device's invitation, the offer it took (single use on the
///   server) and whether it answered yes; resumed by ``ClientEngine/beginLink()`` and the link
///   flows.
/// - ``PendingAcceptanceState``: an existing device whose user and the new device's user both
///   said yes: it adds the device, seals the keys and reports the result, even after a crash.
/// - ``PendingRecoveryState``: a recovering device about to append itself: the verified log and
///   the epoch keys it opened, so it can finish without the recovery secret once it is a member.
///
/// The encoding is private to this device: fields in order, byte strings as `LE64(length) ‖
/// bytes`, wiped after use.
struct PendingLinkState: Equatable {
    enum Stage: UInt8 {
        /// The invitation is shown; no offer taken yet.
        case invited = 1
        /// The offer was taken and verified; the user has not answered.
        case offered = 2
        /// This device answered yes and waits for the result.
        case answered = 3
    }

    var payload: PairingPayload
    var stage: Stage
    /// The offer's verified log (serialised entries), once taken.
    var offeredLog: [[UInt8]] = []
}

struct PendingAcceptanceState: Equatable {
    var payload: PairingPayload
}

struct PendingRecoveryState {
    /// The log verified as the recovery key, ending with this device's add entry.
    var log: [[UInt8]]
    /// The epoch keys opened as the recovery key.
    var keys: [UInt64: SymmetricKey]
}

extension ClientCore {
    static let pendingContext: [UInt8] = Array("pending-flow".utf8)

    // MARK: Link (new device)

    func pendingLink() throws(ClientError) -> PendingLinkState? {
        guard var bytes = try loadPending(.pendingLink) else { return nil }
        defer { SecretBytes.wipe(&bytes) }
        var reader = LocalRecordReader(bytes)
        guard let stage = reader.u8().flatMap(PendingLinkState.Stage.init(rawValue:)), var wire = reader.bytes(),
            let count = reader.u64()
        else { throw .storage("pending link record is damaged") }
        defer { SecretBytes.wipe(&wire) }
        var log: [[UInt8]] = []
        for _ in 0..<count {
            guard let entry = reader.bytes() else { throw .storage("pending link record is damaged") }
            log.append(entry)
        }
        // An expired invitation is over: forget it (a new one starts cleanly).
        guard let payload = try? PairingPayload(wire: wire, nowMs: now()) else {
            try clearPending(.pendingLink)
            return nil
        }
        return PendingLinkState(payload: payload, stage: stage, offeredLog: log)
    }

    func savePendingLink(_ state: PendingLinkState) throws(ClientError) {
        var writer = LocalRecordWriter()
        writer.u8(state.stage.rawValue)
        var wire = state.payload.wire
        writer.bytes(wire)
        SecretBytes.wipe(&wire)
        writer.u64(UInt64(state.offeredLog.count))
        for entry in state.offeredLog { writer.bytes(entry) }
        try savePending(.pendingLink, &writer.bytes)
    }

    // MARK: Acceptance (existing device)

    func pendingAcceptance() throws(ClientError) -> PendingAcceptanceState? {
        guard var bytes = try loadPending(.pendingAcceptance) else { return nil }
        defer { SecretBytes.wipe(&bytes) }
        // Past its expiry the acceptance is still finished: the new device said yes.
        guard let payload = try? PairingPayload(storedWire: bytes) else {
            throw .storage("pending acceptance record is damaged")
        }
        return PendingAcceptanceState(payload: payload)
    }

    func savePendingAcceptance(_ state: PendingAcceptanceState) throws(ClientError) {
        var wire = state.payload.wire
        try savePending(.pendingAcceptance, &wire)
    }

    // MARK: Recovery

    func pendingRecovery() throws(ClientError) -> PendingRecoveryState? {
        guard var bytes = try loadPending(.pendingRecovery) else { return nil }
        defer { SecretBytes.wipe(&bytes) }
        var reader = LocalRecordReader(bytes)
        guard let entries = reader.u64() else { throw .storage("pending recovery record is damaged") }
        var log: [[UInt8]] = []
        for _ in 0..<entries {
            guard let entry = reader.bytes() else { throw .storage("pending recovery record is damaged") }
            log.append(entry)
        }
        guard let count = reader.u64() else { throw .storage("pending recovery record is damaged") }
        var keys: [UInt64: SymmetricKey] = [:]
        for _ in 0..<count {
            guard let epoch = reader.u64(), var raw = reader.bytes() else { throw .storage("pending recovery record is damaged") }
            defer { SecretBytes.wipe(&raw) }
            guard let key = try? SymmetricKey(bytes: raw) else { throw .storage("pending recovery record is damaged") }
            keys[epoch] = key
        }
        return PendingRecoveryState(log: log, keys: keys)
    }

    func savePendingRecovery(_ state: PendingRecoveryState) throws(ClientError) {
        var writer = LocalRecordWriter()
        writer.u64(UInt64(state.log.count))
        for entry in state.log { writer.bytes(entry) }
        writer.u64(UInt64(state.keys.count))
        for (epoch, key) in state.keys.sorted(by: { $0.key < $1.key }) {
            writer.u64(epoch)
            var raw = key.secret.copyBytes()
            writer.bytes(raw)
            SecretBytes.wipe(&raw)
        }
        try savePending(.pendingRecovery, &writer.bytes)
    }

    // MARK: Storage

    func clearPending(_ key: MetaKey) throws(ClientError) {
        try store.write { tx in try tx.deleteMeta(key) }
    }

    private func loadPending(_ key: MetaKey) throws(ClientError) -> [UInt8]? {
        guard let sealed = try store.read({ tx in try tx.meta(key) }) else { return nil }
        return try cipher.open(sealed, context: Self.pendingContext + Array(key.rawValue.utf8))
    }

    /// Seals and stores `plain`, then wipes it.
    private func savePending(_ key: MetaKey, _ plain: inout [UInt8]) throws(ClientError) {
        defer { SecretBytes.wipe(&plain) }
        let sealed = cipher.seal(plain, context: Self.pendingContext + Array(key.rawValue.utf8))
        try store.write { tx in try tx.setMeta(key, sealed) }
    }
}

/// Appends fields for a local record (the caller wipes ``bytes``).
struct LocalRecordWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u64(_ value: UInt64) { bytes += value.littleEndianBytes }
    mutating func bytes(_ value: [UInt8]) {
        u64(UInt64(value.count))
        bytes += value
    }
}

/// Reads what ``LocalRecordWriter`` wrote; nil for anything short or out of bounds.
struct LocalRecordReader {
    private let source: [UInt8]
    private var offset = 0

    init(_ source: [UInt8]) { self.source = source }

    mutating func u8() -> UInt8? {
        guard offset < source.count else { return nil }
        defer { offset += 1 }
        return source[offset]
    }

    mutating func u64() -> UInt64? {
        guard source.count - offset >= 8 else { return nil }
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(source[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return value
    }

    mutating func bytes() -> [UInt8]? {
        guard let count = u64(), count <= UInt64(source.count - offset) else { return nil }
        defer { offset += Int(count) }
        return Array(source[offset..<(offset + Int(count))])
    }
}
