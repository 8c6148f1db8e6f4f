public import CloakCrypto
import Foundation

/// What a device-log entry does.
public enum DeviceLogEntryKind: UInt8, Sendable, Hashable {
    /// The first entry: creates the account with its first device.
    case genesis = 1
    /// Adds a device.
    case addDevice = 2
    /// Removes a device and starts a new key epoch.
    case removeDevice = 3
    /// Sets (or replaces) the account's recovery key.
    case setRecovery = 4
}

/// The last change set of a removed device that stays valid in one conversation (ADV-09).
public struct RemovalCutoff: Sendable, Hashable {
    /// The conversation.
    public var conversation: ConversationID
    /// The removed device's last accepted sequence number there.
    public var seq: UInt64
    /// Its hash.
    public var hash: ChangeSetHash

    /// Creates a cut-off.
    public init(conversation: ConversationID, seq: UInt64, hash: ChangeSetHash) {
        self.conversation = conversation
        self.seq = seq
        self.hash = hash
    }
}

/// One validated-for-shape entry of an account's device log (PROTOCOL.md §"Device log").
///
/// ```swift
/// let genesis = DeviceLogEntry.genesis(device: signingKey, agreementKey: x25519.publicKey,
///                                      accountNonce: nonce, createdAtMs: now)
/// let account = AccountID(unchecked: genesis.hash.bytes)
/// ```
public struct DeviceLogEntry: Sendable, Hashable {
    /// Construction version (1).
    public let version: UInt32
    /// What the entry does.
    public let kind: DeviceLogEntryKind
    /// Position in the log, from 0.
    public let index: UInt64
    /// Hash of the previous entry; zero for genesis.
    public let prevHash: EntryHash
    /// The signing device (or recovery key).
    public let signer: DeviceID
    /// Key epoch in effect after this entry.
    public let epoch: UInt64
    /// Author's clock, informational.
    public let createdAtMs: UInt64
    /// genesis/add/setRecovery: the subject's Ed25519 key.
    public let subjectSigningKey: Ed25519PublicKey?
    /// genesis/add/setRecovery: the subject's X25519 key.
    public let subjectAgreementKey: X25519PublicKey?
    /// genesis: 16 random bytes.
    public let accountNonce: [UInt8]
    /// removeDevice: the removed device.
    public let removedDevice: DeviceID?
    /// removeDevice: cut-offs sorted by conversation id, unique.
    public let cutoffs: [RemovalCutoff]
    /// The signer's Ed25519 signature over ``canonicalBytes``.
    public let signature: [UInt8]

    /// The signed and hashed bytes.
    public let canonicalBytes: [UInt8]
    /// BLAKE2b-256 of ``canonicalBytes``: the chain link and, for genesis, the AccountID.
    public let hash: EntryHash

    /// The id of the device this entry adds (genesis, add) or registers as recovery key.
    public var subject: DeviceID? { subjectSigningKey.map(DeviceID.init(signingKey:)) }

    struct Fields {
        var version = ProtocolVersion.current
        var kind: DeviceLogEntryKind
        var index: UInt64
        var prevHash: EntryHash
        var signer: DeviceID
        var epoch: UInt64
        var createdAtMs: UInt64
        var signingKey: Ed25519PublicKey?
        var agreementKey: X25519PublicKey?
        var accountNonce: [UInt8] = []
        var removedDevice: DeviceID?
        var cutoffs: [RemovalCutoff] = []
    }

    init(fields f: Fields, signature: [UInt8]) {
        version = f.version
        kind = f.kind
        index = f.index
        prevHash = f.prevHash
        signer = f.signer
        epoch = f.epoch
        createdAtMs = f.createdAtMs
        subjectSigningKey = f.signingKey
        subjectAgreementKey = f.agreementKey
        accountNonce = f.accountNonce
        removedDevice = f.removedDevice
        cutoffs = f.cutoffs
        self.signature = signature
        canonicalBytes = Self.canonical(f)
        hash = EntryHash(hashing: canonicalBytes)
    }

    static func canonical(_ f: Fields) -> [UInt8] {
        var w = CanonicalWriter(domain: .deviceLogEntry, reserving: 200 + f.cutoffs.count * 56)
        w.u32(f.version)
        w.u8(f.kind.rawValue)
        w.u64(f.index)
        w.fixed(f.prevHash)
        w.fixed(f.signer)
        w.u64(f.epoch)
        w.u64(f.createdAtMs)
        switch f.kind {
        case .genesis:
            w.raw(f.signingKey?.bytes ?? [])
            w.raw(f.agreementKey?.bytes ?? [])
            w.raw(f.accountNonce)
        case .addDevice, .setRecovery:
            w.raw(f.signingKey?.bytes ?? [])
            w.raw(f.agreementKey?.bytes ?? [])
        case .removeDevice:
            w.raw(f.removedDevice?.bytes ?? [])
            w.u32(UInt32(f.cutoffs.count))
            for cutoff in f.cutoffs {
                w.fixed(cutoff.conversation)
                w.u64(cutoff.seq)
                w.fixed(cutoff.hash)
            }
        }
        return w.bytes
    }

    /// Signs `fields` with `signer` (whose DeviceID must be `fields.signer`).
    static func signed(_ fields: Fields, by key: Ed25519PrivateKey) -> DeviceLogEntry {
        DeviceLogEntry(fields: fields, signature: key.signature(for: canonical(fields)))
    }

    /// The serialised `DeviceLogEntry` message.
    public var wire: [UInt8] { FrameCodec.serialize(message) }

    /// The protobuf message.
    public var message: Cloak_V1_DeviceLogEntry {
        var m = Cloak_V1_DeviceLogEntry()
        m.version = version
        m.kind = Cloak_V1_DeviceLogEntryKind(rawValue: Int(kind.rawValue)) ?? .unspecified
        m.index = index
        m.prevHash = Data(prevHash.bytes)
        m.signer = Data(signer.bytes)
        m.epoch = epoch
        m.createdAtMs = createdAtMs
        if let subjectSigningKey { m.deviceSigningKey = Data(subjectSigningKey.bytes) }
        if let subjectAgreementKey { m.deviceAgreementKey = Data(subjectAgreementKey.bytes) }
        m.accountNonce = Data(accountNonce)
        if let removedDevice { m.removedDevice = Data(removedDevice.bytes) }
        m.cutoffs = cutoffs.map { c in
            var wc = Cloak_V1_RemovalCutoff()
            wc.conversationID = Data(c.conversation.bytes)
            wc.seq = c.seq
            wc.hash = Data(c.hash.bytes)
            return wc
        }
        m.signature = Data(signature)
        return m
    }

    /// Parses and shape-checks serialised entry bytes (chain rules are ``DeviceLog``'s job).
    public init(wire: [UInt8], maxCutoffs: Int = ProtocolLimits().maxRemovalCutoffs) throws(ProtocolError) {
        let m = try FrameCodec.parse(Cloak_V1_DeviceLogEntry.self, from: wire, what: "device log entry")
        try self.init(message: m, maxCutoffs: maxCutoffs)
    }

    /// Shape-checks a decoded entry.
    public init(message m: Cloak_V1_DeviceLogEntry, maxCutoffs: Int = ProtocolLimits().maxRemovalCutoffs)
        throws(ProtocolError)
    {
        guard ProtocolVersion.supported.contains(m.version) else { throw .unsupportedVersion(m.version) }
        guard let kind = DeviceLogEntryKind(rawValue: UInt8(clamping: m.kind.rawValue)), m.kind.rawValue > 0 else {
            throw .invalidDeviceLog("unknown entry kind")
        }
        guard m.signature.count == Ed25519PrivateKey.signatureByteCount else {
            throw .invalidField("signature must be 64 bytes")
        }
        var f = Fields(
            version: m.version, kind: kind, index: m.index,
            prevHash: try EntryHash(validating: m.prevHash, field: "prev_hash"),
            signer: try DeviceID(validating: m.signer, field: "signer"), epoch: m.epoch, createdAtMs: m.createdAtMs)
        switch kind {
        case .genesis, .addDevice, .setRecovery:
            do {
                f.signingKey = try Ed25519PublicKey(bytes: Array(m.deviceSigningKey))
                f.agreementKey = try X25519PublicKey(bytes: Array(m.deviceAgreementKey))
            } catch { throw .invalidField("device keys must be 32 bytes each") }
            if kind == .genesis {
                guard m.accountNonce.count == 16 else { throw .invalidField("account_nonce must be 16 bytes") }
                f.accountNonce = Array(m.accountNonce)
            }
        case .removeDevice:
            f.removedDevice = try DeviceID(validating: m.removedDevice, field: "removed_device")
            guard m.cutoffs.count <= maxCutoffs else { throw .invalidField("too many removal cut-offs") }
            f.cutoffs = try m.cutoffs.map { c throws(ProtocolError) in
                RemovalCutoff(
                    conversation: try ConversationID(validating: c.conversationID, field: "cutoff conversation_id"),
                    seq: c.seq, hash: try ChangeSetHash(validating: c.hash, field: "cutoff hash"))
            }
            for (a, b) in zip(f.cutoffs, f.cutoffs.dropFirst()) where !(a.conversation < b.conversation) {
                throw .invalidField("cut-offs must be sorted by conversation id without repeats")
            }
        }
        guard Self.leavesUnusedFieldsEmpty(m, kind: kind) else {
            throw .invalidField("a field this entry kind does not use is set")
        }
        self.init(fields: f, signature: Array(m.signature))
    }

    /// Fields outside an entry kind's canonical bytes are not signed, so a relay could fill
    /// them without changing the entry hash; refusing them keeps one wire form per entry.
    static func leavesUnusedFieldsEmpty(_ m: Cloak_V1_DeviceLogEntry, kind: DeviceLogEntryKind) -> Bool {
        switch kind {
        case .genesis:
            m.removedDevice.isEmpty && m.cutoffs.isEmpty
        case .addDevice, .setRecovery:
            m.accountNonce.isEmpty && m.removedDevice.isEmpty && m.cutoffs.isEmpty
        case .removeDevice:
            m.deviceSigningKey.isEmpty && m.deviceAgreementKey.isEmpty && m.accountNonce.isEmpty
        }
    }
}

extension DeviceLogEntry {
    /// A self-signed genesis entry for a new account.
    public static func genesis(
        device: Ed25519PrivateKey, agreementKey: X25519PublicKey, accountNonce: [UInt8], createdAtMs: UInt64
    ) -> DeviceLogEntry {
        let f = Fields(
            kind: .genesis, index: 0, prevHash: .zero, signer: DeviceID(signingKey: device.publicKey), epoch: 1,
            createdAtMs: createdAtMs, signingKey: device.publicKey, agreementKey: agreementKey,
            accountNonce: accountNonce)
        return signed(f, by: device)
    }

    /// An entry adding a device (or, with `kind: .setRecovery`, registering a recovery key)
    /// after `log`'s head, signed by `signer`. A `set_recovery` that replaces a recovery key
    /// starts epoch `log.currentEpoch + 1` (the replaced secret must open nothing new).
    public static func add(
        _ kind: DeviceLogEntryKind = .addDevice, signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey,
        after log: DeviceLog, signer: Ed25519PrivateKey, createdAtMs: UInt64
    ) -> DeviceLogEntry {
        let replacing = kind == .setRecovery && log.recoveryKey != nil
        let f = Fields(
            kind: kind, index: UInt64(log.entries.count), prevHash: log.head,
            signer: DeviceID(signingKey: signer.publicKey), epoch: log.currentEpoch + (replacing ? 1 : 0),
            createdAtMs: createdAtMs,
            signingKey: signingKey, agreementKey: agreementKey)
        return signed(f, by: signer)
    }

    /// An entry removing `device`, starting epoch `log.currentEpoch + 1`.
    public static func remove(
        _ device: DeviceID, cutoffs: [RemovalCutoff], after log: DeviceLog, signer: Ed25519PrivateKey,
        createdAtMs: UInt64
    ) -> DeviceLogEntry {
        let f = Fields(
            kind: .removeDevice, index: UInt64(log.entries.count), prevHash: log.head,
            signer: DeviceID(signingKey: signer.publicKey), epoch: log.currentEpoch + 1, createdAtMs: createdAtMs,
            removedDevice: device, cutoffs: cutoffs.sorted { $0.conversation < $1.conversation })
        return signed(f, by: signer)
    }
}
