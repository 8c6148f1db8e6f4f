@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation

/// A device with deterministic keys (each seed gives different keys).
struct TestDevice {
    let signing: Ed25519PrivateKey
    let agreement: X25519PrivateKey
    var id: DeviceID { DeviceID(signingKey: signing.publicKey) }

    init(seed: UInt64) {
        let random = DeterministicRandom(seed: seed)
        signing = Ed25519PrivateKey(using: random)
        agreement = X25519PrivateKey(using: random)
    }
}

/// An account with devices A (genesis), B and C (added by A), plus helpers to extend its log
/// and to seal change sets under it.
struct AccountFixture {
    let a = TestDevice(seed: 101)
    let b = TestDevice(seed: 102)
    let c = TestDevice(seed: 103)
    var log: DeviceLog
    static let time: UInt64 = 1_767_225_600_000

    init() throws {
        let genesis = DeviceLogEntry.genesis(
            device: a.signing, agreementKey: a.agreement.publicKey, accountNonce: [UInt8](repeating: 9, count: 16),
            createdAtMs: Self.time)
        log = try DeviceLog(genesis: genesis)
        try add(b, by: a)
        try add(c, by: a)
    }

    mutating func add(_ device: TestDevice, by signer: TestDevice) throws {
        try log.append(addEntry(device, by: signer))
    }

    func addEntry(_ device: TestDevice, by signer: TestDevice, kind: DeviceLogEntryKind = .addDevice) -> DeviceLogEntry
    {
        DeviceLogEntry.add(
            kind, signingKey: device.signing.publicKey, agreementKey: device.agreement.publicKey, after: log,
            signer: signer.signing, createdAtMs: Self.time)
    }

    func removeEntry(_ device: TestDevice, by signer: TestDevice, cutoffs: [RemovalCutoff] = []) -> DeviceLogEntry {
        DeviceLogEntry.remove(device.id, cutoffs: cutoffs, after: log, signer: signer.signing, createdAtMs: Self.time)
    }

    static func epochKey(_ epoch: UInt64) -> SymmetricKey {
        SymmetricKey.random(using: DeterministicRandom(seed: 500 + epoch))
    }

    static func conversationKey(_ conversation: ConversationID, epoch: UInt64) -> SymmetricKey {
        ConversationKeys.conversationKey(epochKey: epochKey(epoch), conversation: conversation, epoch: epoch)
    }

    static let conversation = ConversationID(unchecked: Array(1...16))
    static let otherConversation = ConversationID(unchecked: Array(17...32))

    /// Seals a change set by `author` naming log index `index` (default: the head).
    func seal(
        by author: TestDevice, seq: UInt64, prev: ChangeSetHash = .zero, conversation: ConversationID = conversation,
        atIndex index: UInt64? = nil, epoch: UInt64? = nil, body: [UInt8] = Array("hello".utf8), nonceSeed: UInt64 = 7
    ) throws -> ChangeSet {
        let index = index ?? log.headIndex
        let epoch = epoch ?? log.epoch(atIndex: index) ?? log.currentEpoch
        let header = ChangeSetHeader(
            account: log.account, conversation: conversation, author: author.id, seq: seq, prevHash: prev,
            epoch: epoch, deviceLogIndex: index, deviceLogHead: log.hash(atIndex: index) ?? .zero)
        return try ChangeSetSealer.seal(
            body: body, header: header, conversationKey: Self.conversationKey(conversation, epoch: epoch),
            signer: author.signing, random: DeterministicRandom(seed: nonceSeed &+ seq))
    }
}

/// Flips one bit.
func flip(_ bytes: [UInt8], _ bit: Int) -> [UInt8] {
    var out = bytes
    out[bit / 8] ^= UInt8(1 << (bit % 8))
    return out
}

/// Hand-written protobuf bytes, for inputs no well-behaved encoder would produce.
struct ProtoBytes {
    private(set) var bytes: [UInt8] = []

    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        return out + [UInt8(v)]
    }

    /// A varint field (wire type 0).
    mutating func varintField(_ field: UInt64, _ value: UInt64) {
        bytes += Self.varint(field << 3) + Self.varint(value)
    }

    /// A length-delimited field (wire type 2) with the true length.
    mutating func bytesField(_ field: UInt64, _ value: [UInt8]) {
        bytes += Self.varint(field << 3 | 2) + Self.varint(UInt64(value.count)) + value
    }

    /// A length-delimited field that claims `declared` bytes but carries `value`.
    mutating func lyingBytesField(_ field: UInt64, declared: UInt64, _ value: [UInt8]) {
        bytes += Self.varint(field << 3 | 2) + Self.varint(declared) + value
    }

    /// Raw bytes.
    mutating func raw(_ value: [UInt8]) { bytes += value }
}
