@_spi(Randomness) public import CloakCrypto
import Foundation

/// A position in one author's chain of one conversation.
public struct ChainHead: Sendable, Hashable {
    /// The author.
    public var device: DeviceID
    /// Its sequence number.
    public var seq: UInt64
    /// The change set's hash.
    public var hash: ChangeSetHash

    /// Creates a head.
    public init(device: DeviceID, seq: UInt64, hash: ChangeSetHash) {
        self.device = device
        self.seq = seq
        self.hash = hash
    }

    /// The protobuf message.
    public var message: Cloak_V1_Head {
        var m = Cloak_V1_Head()
        m.device = Data(device.bytes)
        m.seq = seq
        m.hash = Data(hash.bytes)
        return m
    }

    /// Shape-checks a received head.
    public init(message m: Cloak_V1_Head) throws(ProtocolError) {
        self.init(
            device: try DeviceID(validating: m.device, field: "head device"), seq: m.seq,
            hash: try ChangeSetHash(validating: m.hash, field: "head hash"))
    }
}

/// A sealed whole-conversation state (PROTOCOL.md §"Snapshots"). Same construction as a change
/// set with its own domains, kind byte 2, a snapshot key, and the covered heads and the previous
/// snapshot's hash in the authenticated header (lineage against rollback; ADV-12).
///
/// ```swift
/// let snapshot = try SnapshotSealer.seal(state: bytes, header: header, conversationKey: key,
///                                        signer: me, random: rng)
/// let state = try SnapshotSealer.open(snapshot, conversationKey: key)
/// ```
public struct Snapshot: Sendable, Hashable {
    /// The authenticated header fields.
    public struct Header: Sendable, Hashable {
        /// Construction version.
        public var version: UInt32 = ProtocolVersion.current
        /// The account.
        public var account: AccountID
        /// The conversation.
        public var conversation: ConversationID
        /// The writing device.
        public var author: DeviceID
        /// The author's snapshot counter for this conversation, from 1.
        public var snapshotSeq: UInt64
        /// Hash of the newest snapshot of this conversation the author knew; zero for the first.
        public var prevSnapshotHash: SnapshotHash
        /// Key epoch.
        public var epoch: UInt64
        /// Device-log head index the author wrote under.
        public var deviceLogIndex: UInt64
        /// Its hash.
        public var deviceLogHead: EntryHash
        /// The chain heads whose change sets the state includes, sorted by device.
        public var covers: [ChainHead]

        /// Creates a header (covers are sorted here).
        public init(
            account: AccountID, conversation: ConversationID, author: DeviceID, snapshotSeq: UInt64,
            prevSnapshotHash: SnapshotHash, epoch: UInt64, deviceLogIndex: UInt64, deviceLogHead: EntryHash,
            covers: [ChainHead]
        ) {
            self.account = account
            self.conversation = conversation
            self.author = author
            self.snapshotSeq = snapshotSeq
            self.prevSnapshotHash = prevSnapshotHash
            self.epoch = epoch
            self.deviceLogIndex = deviceLogIndex
            self.deviceLogHead = deviceLogHead
            self.covers = covers.sorted { $0.device < $1.device }
        }

        /// Record kind byte.
        public static let kind: UInt8 = 2

        /// The exact AEAD associated data.
        public var associatedData: [UInt8] {
            var w = CanonicalWriter(domain: .snapshotAD, reserving: 240 + covers.count * 56)
            w.u32(version)
            w.u8(Self.kind)
            w.fixed(account)
            w.fixed(conversation)
            w.fixed(author)
            w.u64(snapshotSeq)
            w.fixed(prevSnapshotHash)
            w.u64(epoch)
            w.u64(deviceLogIndex)
            w.fixed(deviceLogHead)
            w.u32(UInt32(covers.count))
            for head in covers {
                w.fixed(head.device)
                w.u64(head.seq)
                w.fixed(head.hash)
            }
            return w.bytes
        }
    }

    /// The header.
    public let header: Header
    /// The nonce.
    public let nonce: [UInt8]
    /// Ciphertext with tag.
    public let ciphertext: [UInt8]
    /// Key-commitment tag.
    public let commitment: [UInt8]
    /// Author signature.
    public let signature: [UInt8]
    /// BLAKE2b-256 of ``signedMessage``.
    public let hash: SnapshotHash

    /// domain ‖ associated data ‖ nonce ‖ commitment ‖ LE64(|ct|) ‖ ct.
    public var signedMessage: [UInt8] {
        Self.signedMessage(header: header, nonce: nonce, commitment: commitment, ciphertext: ciphertext)
    }

    static func signedMessage(header: Header, nonce: [UInt8], commitment: [UInt8], ciphertext: [UInt8]) -> [UInt8] {
        var w = CanonicalWriter(domain: .snapshotSignature, reserving: 400 + ciphertext.count)
        w.raw(header.associatedData)
        w.raw(nonce)
        w.raw(commitment)
        w.lengthPrefixed(ciphertext)
        return w.bytes
    }

    init(header: Header, nonce: [UInt8], ciphertext: [UInt8], commitment: [UInt8], signature: [UInt8]) {
        self.header = header
        self.nonce = nonce
        self.ciphertext = ciphertext
        self.commitment = commitment
        self.signature = signature
        hash = SnapshotHash(
            hashing: Self.signedMessage(header: header, nonce: nonce, commitment: commitment, ciphertext: ciphertext))
    }

    /// Checks the author's signature.
    public func verifySignature(_ authorKey: Ed25519PublicKey) throws(ProtocolError) {
        guard DeviceID(signingKey: authorKey) == header.author, authorKey.isValidSignature(signature, for: signedMessage)
        else { throw .badSignature("snapshot") }
    }

    /// The protobuf message.
    public var message: Cloak_V1_Snapshot {
        var m = Cloak_V1_Snapshot()
        m.version = header.version
        m.accountID = Data(header.account.bytes)
        m.conversationID = Data(header.conversation.bytes)
        m.author = Data(header.author.bytes)
        m.snapshotSeq = header.snapshotSeq
        m.prevSnapshotHash = Data(header.prevSnapshotHash.bytes)
        m.epoch = header.epoch
        m.deviceLogIndex = header.deviceLogIndex
        m.deviceLogHead = Data(header.deviceLogHead.bytes)
        m.covers = header.covers.map(\.message)
        m.nonce = Data(nonce)
        m.ciphertext = Data(ciphertext)
        m.commitment = Data(commitment)
        m.signature = Data(signature)
        return m
    }

    /// Shape-checks a received snapshot.
    public init(message m: Cloak_V1_Snapshot) throws(ProtocolError) {
        guard ProtocolVersion.supported.contains(m.version) else { throw .unsupportedVersion(m.version) }
        guard m.nonce.count == 24, m.commitment.count == 32, m.signature.count == 64, m.ciphertext.count >= 16 else {
            throw .invalidField("snapshot nonce, commitment, signature or ciphertext has the wrong length")
        }
        guard m.snapshotSeq >= 1 else { throw .invalidField("snapshot_seq must start at 1") }
        let covers = try m.covers.map { h throws(ProtocolError) in try ChainHead(message: h) }
        for (a, b) in zip(covers, covers.dropFirst()) where !(a.device < b.device) {
            throw .invalidField("snapshot covers must be sorted by device without repeats")
        }
        let header = Header(
            account: try AccountID(validating: m.accountID, field: "account_id"),
            conversation: try ConversationID(validating: m.conversationID, field: "conversation_id"),
            author: try DeviceID(validating: m.author, field: "author"), snapshotSeq: m.snapshotSeq,
            prevSnapshotHash: try SnapshotHash(validating: m.prevSnapshotHash, field: "prev_snapshot_hash"),
            epoch: m.epoch, deviceLogIndex: m.deviceLogIndex,
            deviceLogHead: try EntryHash(validating: m.deviceLogHead, field: "device_log_head"), covers: covers)
        self.init(
            header: header, nonce: Array(m.nonce), ciphertext: Array(m.ciphertext), commitment: Array(m.commitment),
            signature: Array(m.signature))
    }
}

/// Seals and opens snapshot states.
public enum SnapshotSealer {
    /// Pads, encrypts under the snapshot key, commits and signs `state` (a serialised
    /// `SnapshotBody`).
    @_spi(Randomness)
    public static func seal(
        body: [UInt8], header: Snapshot.Header, conversationKey: SymmetricKey, signer: Ed25519PrivateKey,
        random: any RandomSource
    ) throws(CryptoError) -> Snapshot {
        let key = ConversationKeys.snapshotKey(
            conversationKey: conversationKey, conversation: header.conversation, epoch: header.epoch)
        let padded = try Padding.pad(body)
        let sealed = CommittedAEAD.seal(padded, key: key, associatedData: header.associatedData, using: random)
        let signature = signer.signature(
            for: Snapshot.signedMessage(
                header: header, nonce: sealed.nonce, commitment: sealed.commitment, ciphertext: sealed.ciphertext))
        return Snapshot(
            header: header, nonce: sealed.nonce, ciphertext: sealed.ciphertext, commitment: sealed.commitment,
            signature: signature)
    }

    /// Verifies the commitment, decrypts and unpads.
    public static func open(_ snapshot: Snapshot, conversationKey: SymmetricKey) throws(CryptoError) -> [UInt8] {
        let header = snapshot.header
        let key = ConversationKeys.snapshotKey(
            conversationKey: conversationKey, conversation: header.conversation, epoch: header.epoch)
        let box = CommittedAEAD.SealedBox(
            nonce: snapshot.nonce, ciphertext: snapshot.ciphertext, commitment: snapshot.commitment)
        return try Padding.unpad(CommittedAEAD.open(box, key: key, associatedData: header.associatedData))
    }
}
