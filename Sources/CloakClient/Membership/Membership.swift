import CloakCrypto
public import CloakProtocol

/// Who belongs to the account and which keys this device holds: the verified device log, the
/// epoch keys, and whether this device learned of its own removal. It owns the `device_log`,
/// `epoch_keys` and `pending_envelopes` tables and the pending epoch key; nothing else writes
/// them.
struct Membership {
    /// The verified device log, once this device has an account.
    private(set) var log: DeviceLog?
    /// The epoch keys this device holds.
    private(set) var keyring = Keyring()
    /// This device verified a signed entry removing it.
    private(set) var removed = false
    /// The log length a verified record proves exists (a member's signed change-set header
    /// naming a later entry, a signed envelope of a later epoch). While the verified log is
    /// shorter, this device knows it is stale and seals nothing (ADV-45).
    private(set) var requiredLogLength = 0
    /// The epoch a member's signed envelope proves has begun.
    private(set) var requiredEpoch: UInt64 = 0
    /// Whether the verified log is known to be behind.
    var isKnownStale: Bool {
        (log?.entries.count ?? 0) < requiredLogLength || (log?.currentEpoch ?? 0) < requiredEpoch
    }

    var account: AccountID? { log?.account }

    /// Reads the log and the keys back from the store.
    static func load(_ tx: any StoreTransaction, cipher: LocalCipher) throws -> Membership {
        var membership = Membership()
        membership.removed = try tx.meta(.removed) != nil
        let wires = try tx.deviceLogEntries()
        guard !wires.isEmpty else { return membership }
        let entries: [DeviceLogEntry]
        do { entries = try wires.map { bytes throws(ProtocolError) in try DeviceLogEntry(wire: bytes) } } catch {
            throw ClientError.storage("stored device log is corrupt")
        }
        do { membership.log = try DeviceLog(verifying: entries) } catch {
            throw ClientError.storage("stored device log does not verify")
        }
        for (epoch, sealed) in try tx.epochKeys() {
            var raw = try cipher.open(sealed, context: Self.epochContext(epoch))
            defer { SecretBytes.wipe(&raw) }
            guard let key = try? SymmetricKey(bytes: raw) else { throw ClientError.storage("stored epoch key is corrupt") }
            membership.keyring.add(key, epoch: epoch)
        }
        if let sealed = try tx.meta(.assistantKeys) {
            var raw = try cipher.open(sealed, context: Self.scopedContext)
            defer { SecretBytes.wipe(&raw) }
            guard raw.count % Self.scopedRecordBytes == 0 else { throw ClientError.storage("stored conversation keys are corrupt") }
            for start in stride(from: 0, to: raw.count, by: Self.scopedRecordBytes) {
                guard let conversation = try? ConversationID(validating: raw[start..<start + 16], field: "conversation"),
                    let epoch = UInt64(littleEndianBytes: Array(raw[start + 16..<start + 24])),
                    let key = try? SymmetricKey(bytes: Array(raw[start + 24..<start + 56]))
                else { throw ClientError.storage("stored conversation keys are corrupt") }
                membership.keyring.addScoped(key, conversation: conversation, epoch: epoch)
            }
        }
        return membership
    }

    static let scopedContext: [UInt8] = Array("assistant-keys".utf8)
    /// conversation (16) ‖ LE64 epoch ‖ key (32).
    static let scopedRecordBytes = 56

    /// Stores conversation keys an assistant received (the whole list is sealed again: an
    /// assistant holds a few per conversation of its scope).
    mutating func addScopedKeys(
        _ keys: [(conversation: ConversationID, epoch: UInt64, key: SymmetricKey)], _ tx: any StoreTransaction,
        cipher: LocalCipher
    ) throws {
        guard !keys.isEmpty else { return }
        for item in keys { keyring.addScoped(item.key, conversation: item.conversation, epoch: item.epoch) }
        var plain: [UInt8] = []
        defer { SecretBytes.wipe(&plain) }
        for (id, key) in keyring.scopedKeys.sorted(by: { ($0.key.epoch, $0.key.conversation) < ($1.key.epoch, $1.key.conversation) }) {
            plain += id.conversation.bytes + id.epoch.littleEndianBytes + key.secret.copyBytes()
        }
        try tx.setMeta(.assistantKeys, cipher.seal(plain, context: Self.scopedContext))
    }

    /// Whether this client is an assistant of the account (PROTOCOL.md §29), not a device.
    func isAssistant(_ me: DeviceID) -> Bool { log?.assistants[me] != nil }

    static func epochContext(_ epoch: UInt64) -> [UInt8] { Array("epoch-key".utf8) + epoch.littleEndianBytes }
    static let pendingKeyContext: [UInt8] = Array("pending-epoch-key".utf8)

    /// Whether this device may seal change sets now: it holds the current epoch's key and its
    /// log is not known to be stale (a removal it has not seen may have started a new epoch).
    var canSeal: Bool {
        guard let log, !removed, !isKnownStale else { return false }
        return keyring.has(epoch: log.currentEpoch) || keyring.scopedKeys.keys.contains { $0.epoch == log.currentEpoch }
    }

    /// Whether this device may seal change sets of `conversation` now (an assistant holds the
    /// keys of its scope only).
    func canSeal(_ conversation: ConversationID) -> Bool {
        guard let log, canSeal else { return false }
        return keyring.has(conversation: conversation, epoch: log.currentEpoch)
    }

    /// Notes that a verified record names log entry `logLength - 1`.
    mutating func require(logLength: UInt64) {
        requiredLogLength = max(requiredLogLength, Int(clamping: logLength))
    }

    /// Notes that a member signed an envelope of `epoch`.
    mutating func require(epoch: UInt64) {
        requiredEpoch = max(requiredEpoch, epoch)
    }

    // MARK: Changes

    /// Stores a verified log and epoch keys as this device's account.
    mutating func adopt(_ log: DeviceLog, keys: [UInt64: SymmetricKey], _ tx: any StoreTransaction, cipher: LocalCipher)
        throws
    {
        for entry in log.entries { try tx.putDeviceLogEntry(index: entry.index, wire: entry.wire) }
        var keyring = Keyring()
        for (epoch, key) in keys.sorted(by: { $0.key < $1.key }) {
            keyring.add(key, epoch: epoch)
            try tx.putEpochKey(epoch: epoch, sealed: Self.sealEpochKey(key, epoch: epoch, cipher: cipher))
        }
        self.log = log
        self.keyring = keyring
    }

    /// Replaces the log with `extended` (already verified to extend it) and stores its new
    /// entries. Returns them.
    mutating func extend(to extended: DeviceLog, _ tx: any StoreTransaction) throws -> [DeviceLogEntry] {
        let known = log?.entries.count ?? 0
        guard extended.entries.count > known else { return [] }
        let added = Array(extended.entries[known...])
        for entry in added { try tx.putDeviceLogEntry(index: entry.index, wire: entry.wire) }
        log = extended
        return added
    }

    /// PROTOCOL.md §23: a device that verifies its own removal wipes its keys from the store
    /// (and from memory with ``forgetKeys()``, once what it already had is rebuilt: its history
    /// before the removal stays readable, ADV-08).
    mutating func markRemoved(_ tx: any StoreTransaction) throws {
        try tx.setMeta(.removed, [1])
        try tx.deleteEpochKeys()
        try tx.deleteMeta(.assistantKeys)
        try tx.deleteQueuedEnvelopes(nil)
        removed = true
    }

    /// Drops the keys from memory (after ``markRemoved(_:)``).
    mutating func forgetKeys() {
        keyring = Keyring()
    }

    /// Stores an epoch key this device received or created.
    mutating func addKey(_ key: SymmetricKey, epoch: UInt64, _ tx: any StoreTransaction, cipher: LocalCipher) throws {
        try tx.putEpochKey(epoch: epoch, sealed: Self.sealEpochKey(key, epoch: epoch, cipher: cipher))
        keyring.add(key, epoch: epoch)
    }

    /// The key sealed for the `epoch_keys` table; the plain copy is wiped (as far as Swift
    /// lets a copy be reached: the array this function owns).
    static func sealEpochKey(_ key: SymmetricKey, epoch: UInt64, cipher: LocalCipher) -> [UInt8] {
        var raw = key.secret.copyBytes()
        defer { SecretBytes.wipe(&raw) }
        return cipher.seal(raw, context: epochContext(epoch))
    }

    /// The per-change-set key of `conversation` in `epoch` (cached in the keyring).
    mutating func changeSetKey(_ conversation: ConversationID, epoch: UInt64) -> SymmetricKey? {
        keyring.changeSetKey(conversation, epoch: epoch)
    }

    /// The conversation key of `conversation` in `epoch` (snapshots).
    mutating func conversationKey(_ conversation: ConversationID, epoch: UInt64) -> SymmetricKey? {
        keyring.conversationKey(conversation, epoch: epoch)
    }

    // MARK: Pending epoch key

    /// Remembers (encrypted, durably) the key of an epoch this device is about to start by a
    /// removal, before the removal is sent: if the reply is lost or the app dies, the key is
    /// installed when the entry shows up in a fetched log (never lost, so the account never
    /// ends up with an epoch nobody holds).
    static func rememberPendingKey(_ key: SymmetricKey, epoch: UInt64, _ tx: any StoreTransaction, cipher: LocalCipher)
        throws
    {
        var raw = key.secret.copyBytes()
        var plain = epoch.littleEndianBytes
        plain.reserveCapacity(8 + raw.count)
        plain += raw
        defer {
            SecretBytes.wipe(&raw)
            SecretBytes.wipe(&plain)
        }
        try tx.setMeta(.pendingEpochKey, cipher.seal(plain, context: pendingKeyContext))
    }

    /// The remembered key for `epoch`, if any.
    static func pendingKey(for epoch: UInt64, _ tx: any StoreTransaction, cipher: LocalCipher) throws -> SymmetricKey? {
        guard let sealed = try tx.meta(.pendingEpochKey) else { return nil }
        var bytes = try cipher.open(sealed, context: pendingKeyContext)
        defer { SecretBytes.wipe(&bytes) }
        guard bytes.count == 40, bytes[0..<8].elementsEqual(epoch.littleEndianBytes) else { return nil }
        return try? SymmetricKey(bytes: Array(bytes[8...]))
    }

    // MARK: Queries

    /// The devices of the account, oldest first.
    func devices(me: DeviceID) -> [DeviceInfo] {
        guard let log else { return [] }
        return log.members.filter { !$0.value.isRecoveryKey }.map { id, member in
            let removal = member.removedAt.map { log.entries[Int($0)] }
            return DeviceInfo(
                id: id, addedAt: log.entries[Int(member.addedAt)].createdAtMs, isActive: member.removedAt == nil,
                isThisDevice: id == me, removedAt: removal?.createdAtMs, removedBy: removal?.signer)
        }.sorted { ($0.addedAt, $0.id) < ($1.addedAt, $1.id) }
    }

    /// Checks one key envelope against a verified log (PROTOCOL.md §12): for this account, from
    /// a member not removed before the epoch began, signed, sealed to this recipient, bound to
    /// this account, epoch and recipient.
    static func openEnvelope(_ envelope: KeyEnvelope, log: DeviceLog, recipient: DeviceID, key: X25519PrivateKey)
        -> EnvelopeOutcome
    {
        guard envelope.account == log.account else { return .refused("envelope for another account") }
        guard let sender = log.members[envelope.sender] else { return .refused("sender was never a member") }
        guard let start = log.entries.firstIndex(where: { $0.epoch == envelope.epoch }) else {
            return .refused("epoch \(envelope.epoch) has not started")
        }
        if let removedAt = sender.removedAt, removedAt <= UInt64(start) {
            return .refused("sender was removed before epoch \(envelope.epoch) began")
        }
        do {
            return .opened(try envelope.open(with: key, recipient: recipient, senderKey: sender.signingKey))
        } catch {
            return .refused("envelope check failed: \(error)")
        }
    }
}

/// The outcome of checking one key envelope.
enum EnvelopeOutcome {
    case opened(SymmetricKey)
    case refused(String)
}

/// A device of the account, as `cloak devices` lists it.
public struct DeviceInfo: Sendable, Hashable {
    /// Its id.
    public let id: DeviceID
    /// When it was added (the adding device's clock, ms since the Unix epoch).
    public let addedAt: UInt64
    /// False once removed.
    public let isActive: Bool
    /// True for the device this client runs on.
    public let isThisDevice: Bool
    /// When it was removed (the removing device's clock, ms since the Unix epoch), if it was.
    public let removedAt: UInt64?
    /// The device that signed its removal, if it was removed.
    public let removedBy: DeviceID?
}
