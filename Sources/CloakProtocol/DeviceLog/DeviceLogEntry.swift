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
    /// Grants an AI assistant access to some conversations until an expiry (or widens an
    /// active assistant's scope and sets its expiry); PROTOCOL.md §29.
    case grantAssistant = 5
    /// Ends an assistant's grant and starts a new key epoch.
    case revokeAssistant = 6
    /// Removes conversations from an assistant's scope and starts a new key epoch.
    case restrictAssistant = 7

    /// Whether the entry starts the next key epoch (everything written afterwards is sealed
    /// under a key the member it ends or narrows never receives).
    public var startsEpoch: Bool {
        switch self {
        case .removeDevice, .revokeAssistant, .restrictAssistant: true
        case .genesis, .addDevice, .setRecovery, .grantAssistant: false
        }
    }
}

/// Why a `revoke_assistant` entry ends a grant (informational: both end it the same way).
public enum AssistantEndReason: UInt8, Sendable, Hashable {
    /// A person revoked it.
    case revoked = 1
    /// A device saw its expiry pass.
    case expired = 2
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
    /// removeDevice, revokeAssistant, restrictAssistant: cut-offs sorted by conversation id,
    /// unique.
    public let cutoffs: [RemovalCutoff]
    /// grantAssistant: the conversations it may read and write; restrictAssistant: those
    /// removed from its scope. Sorted, unique, never the library.
    public let scope: [ConversationID]
    /// grantAssistant: when the grant ends (ms since the Unix epoch).
    public let expiresAtMs: UInt64
    /// revokeAssistant: why.
    public let endReason: AssistantEndReason?
    /// The signer's Ed25519 signature over ``canonicalBytes``.
    public let signature: [UInt8]

    /// The signed and hashed bytes.
    public let canonicalBytes: [UInt8]
    /// BLAKE2b-256 of ``canonicalBytes``: the chain link and, for genesis, the AccountID.
    public let hash: EntryHash

    /// The id of the device this entry adds (genesis, add) or registers as recovery key, or of
    /// the assistant it grants.
    public var subject: DeviceID? { subjectSigningKey.map(DeviceID.init(signingKey:)) }

    /// The assistant a grant, revoke or restrict entry is about.
    public var assistant: DeviceID? {
        switch kind {
        case .grantAssistant: subject
        case .revokeAssistant, .restrictAssistant: removedDevice
        default: nil
        }
    }

    /// Most conversations one grant or restrict entry may list (PROTOCOL.md §24).
    public static let maxScope = 1_000

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
        var scope: [ConversationID] = []
        var expiresAtMs: UInt64 = 0
        var endReason: AssistantEndReason?
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
        scope = f.scope
        expiresAtMs = f.expiresAtMs
        endReason = f.endReason
        self.signature = signature
        canonicalBytes = Self.canonical(f)
        hash = EntryHash(hashing: canonicalBytes)
    }

    static func canonical(_ f: Fields) -> [UInt8] {
        var w = CanonicalWriter(domain: .deviceLogEntry, reserving: 200 + f.cutoffs.count * 56 + f.scope.count * 16)
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
            writeCutoffs(f.cutoffs, &w)
        case .grantAssistant:
            w.raw(f.signingKey?.bytes ?? [])
            w.raw(f.agreementKey?.bytes ?? [])
            w.u64(f.expiresAtMs)
            writeScope(f.scope, &w)
        case .revokeAssistant:
            w.raw(f.removedDevice?.bytes ?? [])
            w.u8(f.endReason?.rawValue ?? 0)
            writeCutoffs(f.cutoffs, &w)
        case .restrictAssistant:
            w.raw(f.removedDevice?.bytes ?? [])
            writeScope(f.scope, &w)
            writeCutoffs(f.cutoffs, &w)
        }
        return w.bytes
    }

    private static func writeCutoffs(_ cutoffs: [RemovalCutoff], _ w: inout CanonicalWriter) {
        w.u32(UInt32(cutoffs.count))
        for cutoff in cutoffs {
            w.fixed(cutoff.conversation)
            w.u64(cutoff.seq)
            w.fixed(cutoff.hash)
        }
    }

    private static func writeScope(_ scope: [ConversationID], _ w: inout CanonicalWriter) {
        w.u32(UInt32(scope.count))
        for conversation in scope { w.fixed(conversation) }
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
        m.scope = scope.map { Data($0.bytes) }
        m.expiresAtMs = expiresAtMs
        if let endReason { m.endReason = Cloak_V1_AssistantEndReason(rawValue: Int(endReason.rawValue)) ?? .unspecified }
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
            f.cutoffs = try Self.parseCutoffs(m.cutoffs, max: maxCutoffs)
        case .grantAssistant:
            do {
                f.signingKey = try Ed25519PublicKey(bytes: Array(m.deviceSigningKey))
                f.agreementKey = try X25519PublicKey(bytes: Array(m.deviceAgreementKey))
            } catch { throw .invalidField("assistant keys must be 32 bytes each") }
            f.expiresAtMs = m.expiresAtMs
            f.scope = try Self.parseScope(m.scope)
        case .revokeAssistant:
            f.removedDevice = try DeviceID(validating: m.removedDevice, field: "removed_device")
            guard let reason = AssistantEndReason(rawValue: UInt8(clamping: m.endReason.rawValue)), m.endReason.rawValue > 0
            else { throw .invalidField("unknown end_reason") }
            f.endReason = reason
            f.cutoffs = try Self.parseCutoffs(m.cutoffs, max: maxCutoffs)
        case .restrictAssistant:
            f.removedDevice = try DeviceID(validating: m.removedDevice, field: "removed_device")
            f.scope = try Self.parseScope(m.scope)
            f.cutoffs = try Self.parseCutoffs(m.cutoffs, max: maxCutoffs)
        }
        guard Self.leavesUnusedFieldsEmpty(m, kind: kind) else {
            throw .invalidField("a field this entry kind does not use is set")
        }
        self.init(fields: f, signature: Array(m.signature))
    }

    private static func parseCutoffs(_ cutoffs: [Cloak_V1_RemovalCutoff], max: Int) throws(ProtocolError) -> [RemovalCutoff] {
        guard cutoffs.count <= max else { throw .invalidField("too many removal cut-offs") }
        let parsed = try cutoffs.map { c throws(ProtocolError) in
            RemovalCutoff(
                conversation: try ConversationID(validating: c.conversationID, field: "cutoff conversation_id"),
                seq: c.seq, hash: try ChangeSetHash(validating: c.hash, field: "cutoff hash"))
        }
        for (a, b) in zip(parsed, parsed.dropFirst()) where !(a.conversation < b.conversation) {
            throw .invalidField("cut-offs must be sorted by conversation id without repeats")
        }
        return parsed
    }

    private static func parseScope(_ scope: [Data]) throws(ProtocolError) -> [ConversationID] {
        guard !scope.isEmpty, scope.count <= maxScope else {
            throw .invalidField("an assistant's scope lists 1 to \(maxScope) conversations")
        }
        let parsed = try scope.map { data throws(ProtocolError) in try ConversationID(validating: data, field: "scope") }
        for (a, b) in zip(parsed, parsed.dropFirst()) where !(a < b) {
            throw .invalidField("scope must be sorted by conversation id without repeats")
        }
        guard !parsed.contains(.library) else { throw .invalidField("the library conversation is never in a scope") }
        return parsed
    }

    /// Fields outside an entry kind's canonical bytes are not signed, so a relay could fill
    /// them without changing the entry hash; refusing them keeps one wire form per entry.
    static func leavesUnusedFieldsEmpty(_ m: Cloak_V1_DeviceLogEntry, kind: DeviceLogEntryKind) -> Bool {
        let noAssistantFields = m.scope.isEmpty && m.expiresAtMs == 0 && m.endReason == .unspecified
        switch kind {
        case .genesis:
            return m.removedDevice.isEmpty && m.cutoffs.isEmpty && noAssistantFields
        case .addDevice, .setRecovery:
            return m.accountNonce.isEmpty && m.removedDevice.isEmpty && m.cutoffs.isEmpty && noAssistantFields
        case .removeDevice:
            return m.deviceSigningKey.isEmpty && m.deviceAgreementKey.isEmpty && m.accountNonce.isEmpty && noAssistantFields
        case .grantAssistant:
            return m.accountNonce.isEmpty && m.removedDevice.isEmpty && m.cutoffs.isEmpty && m.endReason == .unspecified
        case .revokeAssistant:
            return m.deviceSigningKey.isEmpty && m.deviceAgreementKey.isEmpty && m.accountNonce.isEmpty && m.scope.isEmpty
                && m.expiresAtMs == 0
        case .restrictAssistant:
            return m.deviceSigningKey.isEmpty && m.deviceAgreementKey.isEmpty && m.accountNonce.isEmpty
                && m.expiresAtMs == 0 && m.endReason == .unspecified
        }
    }
}
