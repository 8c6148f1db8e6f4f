@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
@_spi(Randomness) import CloakTesting

// Shared by CloakServerTests and CloakServerHTTPTests (the latter links this file): devices,
// accounts and signed records built deterministically from seeds, and frame builders.

/// A device's keys, derived from a seed.
struct TestDevice: Sendable {
    let signing: Ed25519PrivateKey
    let agreement: X25519PrivateKey
    var id: DeviceID { DeviceID(signingKey: signing.publicKey) }

    init(seed: UInt64) {
        let random = DeterministicRandom(seed: seed)
        signing = Ed25519PrivateKey(using: random)
        agreement = X25519PrivateKey(using: random)
    }
}

/// An account as its devices see it: the device log, the devices, each chain's head, and the
/// records they sign.
struct TestAccount: Sendable {
    var log: DeviceLog
    var devices: [TestDevice]
    var heads: [TestChain: (seq: UInt64, hash: ChangeSetHash)] = [:]
    let random: DeterministicRandom
    let key: SymmetricKey
    var account: AccountID { log.account }
    var genesis: DeviceLogEntry { log.entries[0] }

    /// A new account with `deviceCount` devices (genesis by device 0, then adds by device 0).
    static func make(seed: UInt64, devices deviceCount: Int = 1) -> TestAccount {
        let random = DeterministicRandom(seed: seed)
        let devices = (0..<deviceCount).map { TestDevice(seed: seed &* 1000 &+ UInt64($0) &+ 1) }
        let genesis = DeviceLogEntry.genesis(
            device: devices[0].signing, agreementKey: devices[0].agreement.publicKey, accountNonce: random.bytes(16),
            createdAtMs: 1_700_000_000_000)
        var log: DeviceLog
        do { log = try DeviceLog(genesis: genesis) } catch { fatalError("fixture genesis: \(error)") }
        var account = TestAccount(log: log, devices: devices, random: random, key: SymmetricKey.random(using: random))
        for device in devices.dropFirst() { _ = account.addDevice(device) }
        return account
    }

    /// Appends an add-device entry (signed by device 0) to the local log and returns it.
    @discardableResult
    mutating func addDevice(_ device: TestDevice, signer: Int = 0) -> DeviceLogEntry {
        let entry = DeviceLogEntry.add(
            signingKey: device.signing.publicKey, agreementKey: device.agreement.publicKey, after: log,
            signer: devices[signer].signing, createdAtMs: 1_700_000_000_000)
        do { try log.append(entry) } catch { fatalError("fixture add: \(error)") }
        if !devices.contains(where: { $0.id == device.id }) { devices.append(device) }
        return entry
    }

    /// Appends a remove entry for device `index` (signed by `signer`).
    mutating func removeDevice(_ index: Int, signer: Int = 0) -> DeviceLogEntry {
        let entry = DeviceLogEntry.remove(
            devices[index].id, cutoffs: [], after: log, signer: devices[signer].signing, createdAtMs: 1_700_000_000_000)
        do { try log.append(entry) } catch { fatalError("fixture remove: \(error)") }
        return entry
    }

    /// The next change set of `device` in `conversation` (advancing the local chain head).
    mutating func next(by device: Int = 0, in conversation: ConversationID, bodyBytes: Int = 64) -> ChangeSet {
        let author = devices[device].id
        let chain = TestChain(conversation: conversation, author: author)
        let head = heads[chain]
        let changeSet = make(by: device, in: conversation, seq: (head?.seq ?? 0) + 1, prev: head?.hash ?? .zero, bodyBytes: bodyBytes)
        heads[chain] = (changeSet.header.seq, changeSet.hash)
        return changeSet
    }

    /// A change set at an explicit position (for forks and gaps); does not move the head.
    func make(by device: Int, in conversation: ConversationID, seq: UInt64, prev: ChangeSetHash, bodyBytes: Int = 64)
        -> ChangeSet
    {
        let header = ChangeSetHeader(
            account: account, conversation: conversation, author: devices[device].id, seq: seq, prevHash: prev,
            epoch: log.currentEpoch, deviceLogIndex: log.headIndex, deviceLogHead: log.head)
        let body = random.bytes(bodyBytes)
        do {
            return try ChangeSetSealer.seal(
                body: body, header: header, conversationKey: key, signer: devices[device].signing, random: random)
        } catch { fatalError("fixture seal: \(error)") }
    }

    /// A snapshot of `conversation` by `device` covering the given heads.
    func snapshot(by device: Int = 0, in conversation: ConversationID, seq: UInt64 = 1, prev: SnapshotHash = .zero,
                  covers: [ChainHead]) -> Snapshot
    {
        let header = Snapshot.Header(
            account: account, conversation: conversation, author: devices[device].id, snapshotSeq: seq,
            prevSnapshotHash: prev, epoch: log.currentEpoch, deviceLogIndex: log.headIndex, deviceLogHead: log.head,
            covers: covers)
        do {
            return try SnapshotSealer.seal(
                body: random.bytes(100), header: header, conversationKey: key, signer: devices[device].signing,
                random: random)
        } catch { fatalError("fixture snapshot: \(error)") }
    }

    /// An epoch key envelope from `sender` to `recipient`.
    func envelope(from sender: Int = 0, to recipient: Int, epoch: UInt64 = 1) -> KeyEnvelope {
        do {
            return try KeyEnvelope.seal(
                key, epoch: epoch, account: account, recipient: devices[recipient].id,
                recipientKey: devices[recipient].agreement.publicKey, sender: devices[sender].id,
                signer: devices[sender].signing, random: random)
        } catch { fatalError("fixture envelope: \(error)") }
    }

    /// The chain head position of `device` in `conversation`.
    func head(of device: Int, in conversation: ConversationID) -> ChainHead {
        let chain = TestChain(conversation: conversation, author: devices[device].id)
        let head = heads[chain]
        return ChainHead(device: devices[device].id, seq: head?.seq ?? 0, hash: head?.hash ?? .zero)
    }
}

/// A chain of one author in one conversation (the fixtures do not use server types).
struct TestChain: Hashable, Sendable {
    var conversation: ConversationID
    var author: DeviceID
}

/// The same change set with signature bits flipped (`mask` at byte `index`): same hash (it
/// excludes the signature), a signature that no longer verifies — a damaged or hostile copy.
func badlySigned(_ changeSet: ChangeSet, index: Int = 0, mask: UInt8 = 0x01) -> [UInt8] {
    guard var message = try? FrameCodec.parse(Cloak_V1_ChangeSet.self, from: changeSet.wire, what: "change set") else {
        fatalError("fixture change set does not parse")
    }
    message.signature[message.signature.startIndex + index] ^= mask
    return FrameCodec.serialize(message)
}

/// Conversation ids for tests.
func conversation(_ n: UInt8) -> ConversationID {
    ConversationID(unchecked: [UInt8](repeating: n, count: 16))
}

/// Frame builders.
enum Frames {
    static func register(_ genesis: DeviceLogEntry, id: UInt64 = 1) -> [UInt8] {
        var body = Cloak_V1_Register()
        body.genesis = Data(genesis.wire)
        return FrameCodec.encode(.register(body), requestID: id)
    }

    static func authenticate(
        account: AccountID, device: TestDevice, nonce: [UInt8], id: UInt64 = 2, version: UInt32 = 1
    ) -> [UInt8] {
        authenticate(account: account, deviceID: device.id, key: device.signing, nonce: nonce, id: id, version: version)
    }

    static func authenticate(
        account: AccountID, deviceID: DeviceID, key: Ed25519PrivateKey, nonce: [UInt8], id: UInt64 = 2,
        version: UInt32 = 1
    ) -> [UInt8] {
        var body = Cloak_V1_Authenticate()
        body.version = version
        body.accountID = Data(account.bytes)
        body.deviceID = Data(deviceID.bytes)
        body.signature = Data(AuthChallenge.sign(serverNonce: nonce, account: account, device: deviceID, key: key))
        return FrameCodec.encode(.authenticate(body), requestID: id)
    }

    static func push(_ changeSets: [ChangeSet], id: UInt64) -> [UInt8] {
        pushBytes(changeSets.map(\.wire), id: id)
    }

    static func pushBytes(_ items: [[UInt8]], id: UInt64, restore: Bool = false) -> [UInt8] {
        var body = Cloak_V1_Push()
        body.changeSets = items.map { Data($0) }
        body.restore = restore
        return FrameCodec.encode(.push(body), requestID: id)
    }

    /// A restore push (ADV-44 healing): change sets by any device of the account.
    static func restore(_ changeSets: [ChangeSet], id: UInt64) -> [UInt8] {
        pushBytes(changeSets.map(\.wire), id: id, restore: true)
    }

    static func subscribe(
        after cursor: UInt64, anchor: [UInt8] = [], conversations: [ConversationID] = [], id: UInt64
    ) -> [UInt8] {
        var body = Cloak_V1_Subscribe()
        body.afterCursor = cursor
        body.anchorHash = Data(anchor)
        body.conversationIds = conversations.map { Data($0.bytes) }
        return FrameCodec.encode(.subscribe(body), requestID: id)
    }

    static func appendDeviceLog(_ entry: DeviceLogEntry, id: UInt64, restore: Bool = false) -> [UInt8] {
        var body = Cloak_V1_AppendDeviceLog()
        body.entry = Data(entry.wire)
        body.restore = restore
        return FrameCodec.encode(.appendDeviceLog(body), requestID: id)
    }

    static func fetchHeads(after: (conversation: [UInt8], author: [UInt8])? = nil, limit: UInt32 = 0, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_FetchHeads()
        body.afterConversationID = Data(after?.conversation ?? [])
        body.afterAuthor = Data(after?.author ?? [])
        body.limit = limit
        return FrameCodec.encode(.fetchHeads(body), requestID: id)
    }

    static func fetchDeviceLog(_ account: AccountID, from index: UInt64 = 0, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_FetchDeviceLog()
        body.accountID = Data(account.bytes)
        body.fromIndex = index
        return FrameCodec.encode(.fetchDeviceLog(body), requestID: id)
    }

    static func ping(_ nonce: UInt64, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_Ping()
        body.nonce = nonce
        return FrameCodec.encode(.ping(body), requestID: id)
    }

    static func ackCursor(_ cursor: UInt64, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_AckCursor()
        body.cursor = cursor
        return FrameCodec.encode(.ackCursor(body), requestID: id)
    }

    static func putSnapshot(_ snapshot: Snapshot, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_PutSnapshot()
        body.snapshot = snapshot.message
        return FrameCodec.encode(.putSnapshot(body), requestID: id)
    }

    static func putKeyEnvelopes(_ envelopes: [KeyEnvelope], id: UInt64) -> [UInt8] {
        var body = Cloak_V1_PutKeyEnvelopes()
        body.envelopes = envelopes.map(\.message)
        return FrameCodec.encode(.putKeyEnvelopes(body), requestID: id)
    }

    static func fetchKeyEnvelopes(from epoch: UInt64 = 0, id: UInt64) -> [UInt8] {
        var body = Cloak_V1_FetchKeyEnvelopes()
        body.fromEpoch = epoch
        return FrameCodec.encode(.fetchKeyEnvelopes(body), requestID: id)
    }
}

/// A decoded server frame, or why it could not be read.
func decodeServerFrame(_ bytes: [UInt8]) -> Cloak_V1_Frame? {
    try? FrameCodec.decode(bytes, maxFrameBytes: Int.max)
}

extension Cloak_V1_Frame {
    /// The error code if this is an Error frame.
    var errorCode: Cloak_V1_ErrorCode? {
        if case .error(let error) = body { return error.code }
        return nil
    }

    /// The Deliver body, if any.
    var deliverBody: Cloak_V1_Deliver? {
        if case .deliver(let deliver) = body { return deliver }
        return nil
    }

    /// The ChainHeads body, if any.
    var chainHeadsBody: Cloak_V1_ChainHeads? {
        if case .chainHeads(let heads) = body { return heads }
        return nil
    }

    /// The PushAck body, if any.
    var pushAckBody: Cloak_V1_PushAck? {
        if case .pushAck(let ack) = body { return ack }
        return nil
    }

    /// The ServerHello nonce, if any.
    var helloNonce: [UInt8]? {
        if case .serverHello(let hello) = body { return Array(hello.nonce) }
        return nil
    }
}
