public import CloakCrypto

/// An account's verified device log: who may sign, read and write, at every point of its
/// history (PROTOCOL.md §"Device log"). Both the server (to authenticate devices and accept
/// appends) and every client (which trusts nothing the server says) run this same code.
///
/// ```swift
/// var log = try DeviceLog(genesis: genesisEntry)
/// try log.append(addEntry)                       // verifies chain, signer, signature, epoch
/// log.isActive(device, atIndex: changeSet.header.deviceLogIndex)
/// ```
///
/// Rules: entry `i` has index `i` and `prev_hash` = hash of entry `i−1`; genesis is self-signed
/// at epoch 1; `add` and `set_recovery` are signed by a device active at the previous head
/// (`add` may also be signed by the current recovery key) and keep the epoch, except that a
/// `set_recovery` replacing a recovery key advances it by exactly one (so the replaced secret
/// opens nothing written afterwards); `remove` is signed by an active device, names an active
/// device other than the last one, and advances the epoch by exactly one. A device that was
/// ever a member can never be added again (ADV-30).
public struct DeviceLog: Sendable {
    /// A device (or the recovery key) and the part of the log in which it is active.
    public struct Member: Sendable, Hashable {
        /// Its Ed25519 key.
        public let signingKey: Ed25519PublicKey
        /// Its X25519 key (epoch keys are sealed to it).
        public let agreementKey: X25519PublicKey
        /// Index of the entry that added it.
        public let addedAt: UInt64
        /// Index of the entry that removed (or, for a recovery key, replaced) it.
        public internal(set) var removedAt: UInt64?
        /// True for the recovery key.
        public let isRecoveryKey: Bool

        /// Whether it is active in the state after entry `index`.
        public func isActive(atIndex index: UInt64) -> Bool {
            addedAt <= index && (removedAt.map { index < $0 } ?? true)
        }
    }

    /// The verified entries, in order.
    public private(set) var entries: [DeviceLogEntry]
    /// Every device (and recovery key) that was ever a member, by id. Assistants are not
    /// members: they are in ``assistants`` and can never sign an entry or an envelope.
    public private(set) var members: [DeviceID: Member]
    /// Every AI assistant that was ever granted access, by id (PROTOCOL.md §29).
    public internal(set) var assistants: [DeviceID: AssistantMember] = [:]
    /// The account (hash of genesis).
    public let account: AccountID
    /// Index of the newest `remove_device` entry, if any. Kept as entries are appended: the
    /// server checks every push against the epoch starts, and searching the log copied each
    /// entry per push (a fifth of a millisecond with a thousand devices).
    public internal(set) var newestRemovalIndex: UInt64?
    /// Index of the newest entry that started an epoch (a removal, an assistant's revocation
    /// or restriction, or a recovery key's replacement), if any: change sets written under an
    /// older head may be encrypted under a key that a removed device, an assistant or a
    /// replaced recovery secret holds, and are refused with STALE_DEVICE_LOG (PROTOCOL.md §19).
    public internal(set) var newestEpochStartIndex: UInt64?

    /// Verifies a genesis entry and starts the log.
    public init(genesis: DeviceLogEntry) throws(ProtocolError) {
        guard genesis.kind == .genesis, genesis.index == 0, genesis.prevHash.isZero, genesis.epoch == 1,
            let key = genesis.subjectSigningKey, let agreement = genesis.subjectAgreementKey
        else { throw .invalidDeviceLog("genesis must be entry 0 at epoch 1 with zero prev_hash") }
        guard DeviceID(signingKey: key) == genesis.signer else {
            throw .invalidDeviceLog("genesis must be signed by the device it creates")
        }
        guard key.isValidSignature(genesis.signature, for: genesis.canonicalBytes) else {
            throw .badSignature("genesis entry")
        }
        entries = [genesis]
        members = [genesis.signer: Member(signingKey: key, agreementKey: agreement, addedAt: 0, isRecoveryKey: false)]
        account = AccountID(unchecked: genesis.hash.bytes)
    }

    /// Verifies the entries of a full log from genesis.
    public init(verifying entries: [DeviceLogEntry]) throws(ProtocolError) {
        guard let first = entries.first else { throw .invalidDeviceLog("empty device log") }
        try self.init(genesis: first)
        for entry in entries.dropFirst() { try append(entry) }
    }

    /// Hash of the newest entry.
    public var head: EntryHash { entries[entries.count - 1].hash }
    /// Index of the newest entry.
    public var headIndex: UInt64 { UInt64(entries.count - 1) }
    /// The key epoch in effect now.
    public var currentEpoch: UInt64 { entries[entries.count - 1].epoch }

    /// The key epoch in effect after entry `index`, if it exists.
    public func epoch(atIndex index: UInt64) -> UInt64? {
        index < UInt64(entries.count) ? entries[Int(index)].epoch : nil
    }

    /// The hash of entry `index`, if it exists.
    public func hash(atIndex index: UInt64) -> EntryHash? {
        index < UInt64(entries.count) ? entries[Int(index)].hash : nil
    }

    /// Whether `device` is an active *device* (not the recovery key) after entry `index`.
    public func isActive(_ device: DeviceID, atIndex index: UInt64) -> Bool {
        guard let member = members[device], !member.isRecoveryKey else { return false }
        return member.isActive(atIndex: index)
    }

    /// Devices active now, sorted by id.
    public var activeDevices: [DeviceID] {
        members.filter { !$0.value.isRecoveryKey && $0.value.removedAt == nil }.map(\.key).sorted()
    }

    /// The current recovery key, if one is set.
    public var recoveryKey: (id: DeviceID, member: Member)? {
        members.first { $0.value.isRecoveryKey && $0.value.removedAt == nil }.map { ($0.key, $0.value) }
    }

    /// The entry that removed `device`, if any.
    public func removal(of device: DeviceID) -> DeviceLogEntry? {
        guard let at = members[device]?.removedAt, !(members[device]?.isRecoveryKey ?? true) else { return nil }
        return entries[Int(at)]
    }

    /// Verifies and appends the next entry.
    public mutating func append(_ entry: DeviceLogEntry) throws(ProtocolError) {
        guard entry.index == UInt64(entries.count) else {
            throw .invalidDeviceLog("entry index \(entry.index) where \(entries.count) was expected")
        }
        guard entry.prevHash == head else { throw .invalidDeviceLog("prev_hash does not match the log head") }
        guard let signer = members[entry.signer], signer.isActive(atIndex: headIndex) else {
            throw .invalidDeviceLog("signer is not active at the previous head")
        }
        guard signer.signingKey.isValidSignature(entry.signature, for: entry.canonicalBytes) else {
            throw .badSignature("device log entry \(entry.index)")
        }
        switch entry.kind {
        case .genesis:
            throw .invalidDeviceLog("a second genesis entry")
        case .addDevice:
            try applyAdd(entry, signer: signer, asRecovery: false)
        case .setRecovery:
            guard !signer.isRecoveryKey else { throw .invalidDeviceLog("the recovery key cannot replace itself") }
            try applyAdd(entry, signer: signer, asRecovery: true)
        case .removeDevice:
            try applyRemove(entry, signer: signer)
        case .grantAssistant, .revokeAssistant, .restrictAssistant:
            guard !signer.isRecoveryKey else { throw .invalidDeviceLog("the recovery key cannot grant or revoke assistants") }
            try applyAssistantEntry(entry)
        }
        entries.append(entry)
    }

    private mutating func applyAdd(_ entry: DeviceLogEntry, signer: Member, asRecovery: Bool) throws(ProtocolError) {
        let replacing = asRecovery ? recoveryKey : nil
        if replacing != nil {
            guard entry.epoch == currentEpoch + 1 else {
                throw .invalidDeviceLog("replacing the recovery key must advance the epoch by one")
            }
        } else {
            guard entry.epoch == currentEpoch else { throw .invalidDeviceLog("adding must keep the epoch") }
        }
        guard let key = entry.subjectSigningKey, let agreement = entry.subjectAgreementKey, let id = entry.subject
        else { throw .invalidDeviceLog("missing device keys") }
        guard members[id] == nil, assistants[id] == nil else {
            throw .invalidDeviceLog("device \(id) was already a member")
        }
        if let previous = replacing {
            members[previous.id]?.removedAt = entry.index
            newestEpochStartIndex = entry.index
        }
        members[id] = Member(
            signingKey: key, agreementKey: agreement, addedAt: entry.index, isRecoveryKey: asRecovery)
    }

    private mutating func applyRemove(_ entry: DeviceLogEntry, signer: Member) throws(ProtocolError) {
        guard !signer.isRecoveryKey else { throw .invalidDeviceLog("the recovery key cannot remove devices") }
        guard entry.epoch == currentEpoch + 1 else { throw .invalidDeviceLog("removal must advance the epoch by one") }
        guard let removed = entry.removedDevice, isActive(removed, atIndex: headIndex) else {
            throw .invalidDeviceLog("removed device is not active")
        }
        guard activeDevices.count > 1 else { throw .invalidDeviceLog("cannot remove the last active device") }
        members[removed]?.removedAt = entry.index
        newestRemovalIndex = entry.index
        newestEpochStartIndex = entry.index
    }

    /// Checks that `served` (a log from the server) is this log or extends it, and returns the
    /// verified result. A shorter log is a rollback and a different entry at a known index is
    /// a fork: both are refused (ADV-10, ADV-12).
    public func extended(with served: [DeviceLogEntry]) throws(DeviceLogConsistencyError) -> DeviceLog {
        // A fork first: a shorter log that also differs inside the common part is not one the
        // server merely lost the end of (giving the missing entries back would not mend it).
        for (index, entry) in served.prefix(entries.count).enumerated() where entries[index].hash != entry.hash {
            throw .fork(atIndex: UInt64(index))
        }
        guard served.count >= entries.count else {
            throw .rollback(pinnedLength: entries.count, servedLength: served.count)
        }
        var log = self
        for entry in served[entries.count...] {
            do { try log.append(entry) } catch { throw .invalid(error) }
        }
        return log
    }
}

/// Why a served device log was not accepted.
public enum DeviceLogConsistencyError: Error, Equatable, Sendable {
    /// The server's log is shorter than the one this device already verified.
    case rollback(pinnedLength: Int, servedLength: Int)
    /// The server's log differs from the verified one at this index.
    case fork(atIndex: UInt64)
    /// A new entry breaks the chain rules or carries a bad signature (e.g. a server-made "add").
    case invalid(ProtocolError)
}
