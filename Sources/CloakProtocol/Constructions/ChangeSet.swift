@_spi(Randomness) public import CloakCrypto
import Foundation

/// The header of a change set: everything the server may see, all of it authenticated as
/// AEAD associated data and covered by the author's signature (ADV-03, ADV-05).
public struct ChangeSetHeader: Sendable, Hashable {
    /// Construction version (1).
    public var version: UInt32
    /// The account.
    public var account: AccountID
    /// The conversation (``ConversationID/library`` for the account library).
    public var conversation: ConversationID
    /// The author device.
    public var author: DeviceID
    /// Per (author, conversation) sequence number, from 1.
    public var seq: UInt64
    /// Hash of the author's previous change set in this conversation; zero for seq 1.
    public var prevHash: ChangeSetHash
    /// The key epoch used.
    public var epoch: UInt64
    /// Index of the device-log head the author wrote under.
    public var deviceLogIndex: UInt64
    /// Hash of that head.
    public var deviceLogHead: EntryHash
    /// The 24-byte XChaCha20 nonce.
    public var nonce: [UInt8]

    /// Creates a header.
    public init(
        version: UInt32 = ProtocolVersion.current, account: AccountID, conversation: ConversationID, author: DeviceID,
        seq: UInt64, prevHash: ChangeSetHash, epoch: UInt64, deviceLogIndex: UInt64, deviceLogHead: EntryHash,
        nonce: [UInt8] = []
    ) {
        self.version = version
        self.account = account
        self.conversation = conversation
        self.author = author
        self.seq = seq
        self.prevHash = prevHash
        self.epoch = epoch
        self.deviceLogIndex = deviceLogIndex
        self.deviceLogHead = deviceLogHead
        self.nonce = nonce
    }

    /// The record kind byte in the associated data: 1 = change set (snapshots use 2).
    public static let kind: UInt8 = 1

    /// The exact AEAD associated data (PROTOCOL.md §"Change sets"). The nonce is not part of
    /// it: the AEAD authenticates its nonce by construction, and the signed message adds it.
    public var associatedData: [UInt8] {
        var w = CanonicalWriter(domain: .changeSetAD, reserving: 240)
        w.u32(version)
        w.u8(Self.kind)
        w.fixed(account)
        w.fixed(conversation)
        w.fixed(author)
        w.u64(seq)
        w.fixed(prevHash)
        w.u64(epoch)
        w.u64(deviceLogIndex)
        w.fixed(deviceLogHead)
        return w.bytes
    }
}

/// A sealed, signed change set, validated for shape (lengths, version) but not yet for
/// signature, membership or chain position: those need context (PROTOCOL.md §"Receiving").
///
/// ```swift
/// let cs = try ChangeSet(wire: bytes)                 // shape only
/// try cs.verifySignature(authorKey)                    // then membership and chain
/// let body = try ChangeSetSealer.open(cs, conversationKey: key)
/// ```
public struct ChangeSet: Sendable, Hashable {
    /// The authenticated header.
    public let header: ChangeSetHeader
    /// Ciphertext with its 16-byte tag.
    public var ciphertext: [UInt8] { Array(parts[ciphertextRange]) }
    /// The 32-byte key-commitment tag.
    public var commitment: [UInt8] { Array(parts[commitmentRange]) }
    /// The author's 64-byte Ed25519 signature.
    public var signature: [UInt8] { Array(parts[signatureRange]) }
    /// Upper bound of `wire.count − padded plaintext length`: the protobuf envelope around a
    /// ciphertext of up to 256 MiB with every varint at its widest (299 bytes of fixed fields,
    /// 5 of ciphertext key and length, 16 of tag). ``ChangeSetSealer/seal`` keeps
    /// `padded + maxWireOverhead ≤ maxChangeSetBytes`.
    public static let maxWireOverhead = 320

    /// The change-set hash: BLAKE2b-256 of ``signedMessage``.
    public let hash: ChangeSetHash
    /// The serialised `ChangeSet` message, exactly as received or produced (servers store and
    /// forward these bytes unchanged).
    public let wire: [UInt8]
    /// Holds the ciphertext, commitment and signature: `wire` itself when it was parsed in
    /// place (no copy), otherwise the three one after another.
    private let parts: [UInt8]
    private let ciphertextRange: Range<Int>
    private let commitmentRange: Range<Int>
    private let signatureRange: Range<Int>

    /// The exact bytes the author signs: domain ‖ associated data ‖ nonce ‖ commitment ‖
    /// LE64(|ct|) ‖ ct. Built on each call (a receiver verifies once); the hash is fed the
    /// same pieces without building it, since a server that does not verify never needs it.
    public var signedMessage: [UInt8] {
        Self.signedMessage(header: header, commitment: parts[commitmentRange], ciphertext: parts[ciphertextRange])
    }

    private static func signedMessage(
        header: ChangeSetHeader, commitment: ArraySlice<UInt8>, ciphertext: ArraySlice<UInt8>
    ) -> [UInt8] {
        var w = signedPrefix(header: header, commitment: commitment, ciphertextCount: ciphertext.count, reserving: ciphertext.count)
        w.raw(ciphertext)
        return w.bytes
    }

    /// The signed message up to and including LE64(|ct|).
    private static func signedPrefix(
        header: ChangeSetHeader, commitment: ArraySlice<UInt8>, ciphertextCount: Int, reserving extra: Int = 0
    ) -> CanonicalWriter {
        var w = CanonicalWriter(domain: .changeSetSignature, reserving: 320 + extra)
        w.raw(header.associatedData)
        w.raw(header.nonce)
        w.raw(commitment)
        w.u64(UInt64(ciphertextCount))
        return w
    }

    /// BLAKE2b-256 of the signed message, absorbed in two pieces (the ciphertext straight
    /// from where it lies).
    private static func hash(
        header: ChangeSetHeader, parts: [UInt8], commitment: Range<Int>, ciphertext: Range<Int>
    ) -> ChangeSetHash {
        var hasher = BLAKE2b.Hasher(outputByteCount: ChangeSetHash.byteCount)
        hasher.update(signedPrefix(header: header, commitment: parts[commitment], ciphertextCount: ciphertext.count).bytes)
        parts.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[ciphertext])) }
        return ChangeSetHash(unchecked: hasher.finalize())
    }

    /// Parses and shape-checks serialised change-set bytes.
    public init(wire: [UInt8]) throws(ProtocolError) {
        if let fields = ChangeSetFields.scan(wire) {
            try self.init(fields, wire: wire)
        } else {
            let message = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: wire, what: "change set")
            try self.init(ChangeSetFields(message), wire: wire)
        }
    }

    /// The shape checks, on fields read in place or decoded by swift-protobuf.
    init(_ f: ChangeSetFields, wire: [UInt8]) throws(ProtocolError) {
        let bytes = f.bytes
        guard ProtocolVersion.supported.contains(f.version) else { throw .unsupportedVersion(f.version) }
        guard f.seq >= 1 else { throw .invalidField("seq must start at 1") }
        guard f.nonce.count == XChaCha20Poly1305.nonceByteCount else { throw .invalidField("nonce must be 24 bytes") }
        guard f.commitment.count == CommittedAEAD.commitmentByteCount else {
            throw .invalidField("commitment must be 32 bytes")
        }
        guard f.signature.count == Ed25519PrivateKey.signatureByteCount else {
            throw .invalidField("signature must be 64 bytes")
        }
        guard f.ciphertext.count >= XChaCha20Poly1305.tagByteCount + Padding.minimumPaddedLength else {
            throw .invalidField("ciphertext shorter than the smallest padded body")
        }
        let prev = try ChangeSetHash(validating: bytes[f.prevHash], field: "prev_hash")
        guard (f.seq == 1) == prev.isZero else { throw .invalidField("prev_hash must be zero exactly for seq 1") }
        header = ChangeSetHeader(
            version: f.version,
            account: try AccountID(validating: bytes[f.account], field: "account_id"),
            conversation: try ConversationID(validating: bytes[f.conversation], field: "conversation_id"),
            author: try DeviceID(validating: bytes[f.author], field: "author"),
            seq: f.seq, prevHash: prev, epoch: f.epoch, deviceLogIndex: f.deviceLogIndex,
            deviceLogHead: try EntryHash(validating: bytes[f.deviceLogHead], field: "device_log_head"),
            nonce: Array(bytes[f.nonce]))
        parts = bytes
        ciphertextRange = f.ciphertext
        commitmentRange = f.commitment
        signatureRange = f.signature
        hash = Self.hash(header: header, parts: bytes, commitment: f.commitment, ciphertext: f.ciphertext)
        self.wire = wire
    }

    /// A new change set, signed by `signer` over its signed message (built once, for the
    /// signature and the hash).
    init(header: ChangeSetHeader, ciphertext: [UInt8], commitment: [UInt8], signer: Ed25519PrivateKey) {
        self.header = header
        let signedMessage = Self.signedMessage(header: header, commitment: commitment[...], ciphertext: ciphertext[...])
        let signature = signer.signature(for: signedMessage)
        hash = ChangeSetHash(hashing: signedMessage)
        parts = ciphertext + commitment + signature
        ciphertextRange = 0..<ciphertext.count
        commitmentRange = ciphertext.count..<(ciphertext.count + commitment.count)
        signatureRange = commitmentRange.upperBound..<parts.count
        var m = Cloak_V1_ChangeSet()
        m.version = header.version
        m.accountID = Data(header.account.bytes)
        m.conversationID = Data(header.conversation.bytes)
        m.author = Data(header.author.bytes)
        m.seq = header.seq
        m.prevHash = Data(header.prevHash.bytes)
        m.epoch = header.epoch
        m.deviceLogIndex = header.deviceLogIndex
        m.deviceLogHead = Data(header.deviceLogHead.bytes)
        m.nonce = Data(header.nonce)
        m.ciphertext = Data(ciphertext)
        m.commitment = Data(commitment)
        m.signature = Data(signature)
        wire = FrameCodec.serialize(m)
    }

    /// Checks the author's signature (strict Ed25519).
    public func verifySignature(_ authorKey: Ed25519PublicKey) throws(ProtocolError) {
        guard DeviceID(signingKey: authorKey) == header.author else { throw .badSignature("change set (key/author mismatch)") }
        guard authorKey.isValidSignature(signature, for: signedMessage) else { throw .badSignature("change set") }
    }

    /// Equality and hashing by content hash.
    public static func == (lhs: ChangeSet, rhs: ChangeSet) -> Bool { lhs.hash == rhs.hash }
    /// Hashes the content hash.
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }
}

/// Seals and opens change-set bodies (PROTOCOL.md §"Change sets"):
/// pad → XChaCha20-Poly1305 under the change-set key with the header as associated data →
/// commitment → Ed25519 signature.
public enum ChangeSetSealer {
    /// Seals `body` (a serialised `ChangeSetBody`). The nonce is drawn from `random`.
    @_spi(Randomness)
    public static func seal(
        body: [UInt8], header template: ChangeSetHeader, conversationKey: SymmetricKey, signer: Ed25519PrivateKey,
        random: any RandomSource, maxBytes: Int = ProtocolLimits().maxChangeSetBytes
    ) throws(ProtocolError) -> ChangeSet {
        let key = ConversationKeys.changeSetKey(
            conversationKey: conversationKey, conversation: template.conversation, epoch: template.epoch)
        return try seal(body: body, header: template, changeSetKey: key, signer: signer, random: random, maxBytes: maxBytes)
    }

    /// Seals with the change-set key already derived (``ConversationKeys/changeSetKey(conversationKey:conversation:epoch:)``
    /// for the header's conversation and epoch), for callers that cache it.
    @_spi(Randomness)
    public static func seal(
        body: [UInt8], header template: ChangeSetHeader, changeSetKey key: SymmetricKey, signer: Ed25519PrivateKey,
        random: any RandomSource, maxBytes: Int = ProtocolLimits().maxChangeSetBytes
    ) throws(ProtocolError) -> ChangeSet {
        let padded: [UInt8]
        // The limit is on the serialised change set, so the padded body gets what the
        // envelope leaves (a body padded to exactly maxBytes would be refused by the server).
        do { padded = try Padding.pad(body, maximumLength: maxBytes - ChangeSet.maxWireOverhead) } catch {
            throw .changeSetTooLarge(size: body.count, limit: maxBytes)
        }
        let sealed = CommittedAEAD.seal(padded, key: key, associatedData: template.associatedData, using: random)
        var header = template
        header.nonce = sealed.nonce
        return ChangeSet(header: header, ciphertext: sealed.ciphertext, commitment: sealed.commitment, signer: signer)
    }

    /// Verifies the commitment, decrypts and unpads. Call only after the signature, membership
    /// and chain checks have passed.
    public static func open(_ changeSet: ChangeSet, conversationKey: SymmetricKey) throws(CryptoError) -> [UInt8] {
        let header = changeSet.header
        let key = ConversationKeys.changeSetKey(
            conversationKey: conversationKey, conversation: header.conversation, epoch: header.epoch)
        return try open(changeSet, changeSetKey: key)
    }

    /// Opens with the change-set key already derived for the header's conversation and epoch.
    public static func open(_ changeSet: ChangeSet, changeSetKey key: SymmetricKey) throws(CryptoError) -> [UInt8] {
        let header = changeSet.header
        let box = CommittedAEAD.SealedBox(
            nonce: header.nonce, ciphertext: changeSet.ciphertext, commitment: changeSet.commitment)
        let padded = try CommittedAEAD.open(box, key: key, associatedData: header.associatedData)
        return try Padding.unpad(padded)
    }
}
