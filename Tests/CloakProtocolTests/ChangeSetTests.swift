@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

/// Change sets (PROTOCOL.md §"Change sets"): every header field is authenticated, tampering is
/// caught before decryption, ids are content hashes, and sizes stay inside the limit.
@Suite("Change sets")
struct ChangeSetTests {
    static func fixture() throws -> (AccountFixture, ChangeSet) {
        let f = try AccountFixture()
        return (f, try f.seal(by: f.b, seq: 2, prev: ChangeSetHash(hashing: [1]), body: Array(repeating: 7, count: 90)))
    }

    static func rewrite(_ cs: ChangeSet, _ edit: (inout Cloak_V1_ChangeSet) -> Void) throws -> ChangeSet {
        var m = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: cs.wire, what: "change set")
        edit(&m)
        return try ChangeSet(wire: FrameCodec.serialize(m))
    }

    @Test("seal, parse, verify, open round trip; the hash is BLAKE2b-256 of the signed message")
    func roundTrip() throws {
        let (f, cs) = try Self.fixture()
        let parsed = try ChangeSet(wire: cs.wire)
        #expect(parsed.header == cs.header && parsed.hash == cs.hash && parsed.wire == cs.wire)
        #expect(cs.hash.bytes == BLAKE2b.hash(cs.signedMessage, outputByteCount: 32))
        try parsed.verifySignature(f.b.signing.publicKey)
        let key = AccountFixture.conversationKey(AccountFixture.conversation, epoch: 1)
        #expect(try ChangeSetSealer.open(parsed, conversationKey: key) == Array(repeating: 7, count: 90))
        #expect(throws: ProtocolError.badSignature("change set (key/author mismatch)")) {
            try parsed.verifySignature(f.a.signing.publicKey)
        }
    }

    @Test(
        "ADV-03 ADV-05 rewriting any header field breaks the signature and the opening",
        arguments: [
            "account_id", "conversation_id", "author", "seq", "prev_hash", "epoch", "device_log_index",
            "device_log_head",
            "nonce",
        ])
    func headerSubstitution(_ field: String) throws {
        let (f, cs) = try Self.fixture()
        let tampered = try Self.rewrite(cs) { m in
            switch field {
            case "account_id": m.accountID = Data(f.log.entries[1].hash.bytes)
            case "conversation_id": m.conversationID = Data(AccountFixture.otherConversation.bytes)
            case "author": m.author = Data(f.c.id.bytes)
            case "seq": m.seq = 3
            case "prev_hash": m.prevHash = Data(ChangeSetHash(hashing: [2]).bytes)
            case "epoch": m.epoch = 2
            case "device_log_index": m.deviceLogIndex = 1
            case "device_log_head": m.deviceLogHead = Data(f.log.entries[1].hash.bytes)
            default: m.nonce = Data(flip(Array(m.nonce), 3))
            }
        }
        #expect(tampered.hash != cs.hash)
        #expect(throws: ProtocolError.self) { try tampered.verifySignature(f.b.signing.publicKey) }
        #expect(throws: ProtocolError.self) { try tampered.verifySignature(f.c.signing.publicKey) }
        // Even a receiver that skipped the signature could not open it: the commitment binds AD and nonce.
        let key = AccountFixture.conversationKey(tampered.header.conversation, epoch: tampered.header.epoch)
        #expect(throws: CryptoError.self) { try ChangeSetSealer.open(tampered, conversationKey: key) }
    }

    @Test("ADV-05 a change set of conversation X does not open as conversation Y")
    func crossConversation() throws {
        let (_, cs) = try Self.fixture()
        let otherKey = AccountFixture.conversationKey(AccountFixture.otherConversation, epoch: 1)
        #expect(throws: CryptoError.commitmentMismatch) { try ChangeSetSealer.open(cs, conversationKey: otherKey) }
    }

    @Test("ADV-02 no single bit flip of the wire bytes yields another change set that verifies")
    func bitFlips() throws {
        let (f, cs) = try Self.fixture()
        var refusedAtParse = 0
        var refusedAtSignature = 0
        for bit in 0..<(cs.wire.count * 8) {
            guard let flipped = try? ChangeSet(wire: flip(cs.wire, bit)) else { refusedAtParse += 1; continue }
            if (try? flipped.verifySignature(f.b.signing.publicKey)) == nil { refusedAtSignature += 1; continue }
            // Verifying means it is the same change set (e.g. an equivalent protobuf encoding).
            #expect(flipped.hash == cs.hash)
        }
        #expect(refusedAtParse + refusedAtSignature >= cs.wire.count * 8 - 8)
        TestData.report("change set bit flips: \(refusedAtParse) refused at parse, \(refusedAtSignature) at signature")
    }

    @Test("ADV-20 the commitment is checked before decryption")
    func commitment() throws {
        let (_, cs) = try Self.fixture()
        let key = AccountFixture.conversationKey(AccountFixture.conversation, epoch: 1)
        let wrongCommitment = try Self.rewrite(cs) { $0.commitment = Data(flip(Array($0.commitment), 0)) }
        #expect(throws: CryptoError.commitmentMismatch) {
            try ChangeSetSealer.open(wrongCommitment, conversationKey: key)
        }
        let otherEpoch = AccountFixture.conversationKey(AccountFixture.conversation, epoch: 2)
        #expect(throws: CryptoError.commitmentMismatch) { try ChangeSetSealer.open(cs, conversationKey: otherEpoch) }
    }

    /// Ed25519's group order L; S + L is the classic malleated signature.
    static let order: [UInt8] = Array(
        Hex.decodeOrEmpty("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"))

    @Test("ADV-22 the id excludes the signature, and a malleated signature (S + L) is refused")
    func malleability() throws {
        let (f, cs) = try Self.fixture()
        var s = Array(cs.signature[32...])
        var carry = 0
        for i in 0..<32 {
            let sum = Int(s[i]) + Int(Self.order[i]) + carry
            s[i] = UInt8(sum & 0xff)
            carry = sum >> 8
        }
        let malleated = try Self.rewrite(cs) { $0.signature = Data(Array(cs.signature[..<32]) + s) }
        #expect(malleated.hash == cs.hash)
        #expect(throws: ProtocolError.badSignature("change set")) {
            try malleated.verifySignature(f.b.signing.publicKey)
        }
    }

    @Test("ADV-23 a snapshot's bytes passed off as a change set verify and open as nothing")
    func typeConfusion() throws {
        let f = try AccountFixture()
        let key = AccountFixture.conversationKey(AccountFixture.conversation, epoch: 1)
        let header = Snapshot.Header(
            account: f.log.account, conversation: AccountFixture.conversation, author: f.b.id, snapshotSeq: 1,
            prevSnapshotHash: .zero, epoch: 1, deviceLogIndex: f.log.headIndex, deviceLogHead: f.log.head, covers: [])
        let snapshot = try SnapshotSealer.seal(
            body: Array(repeating: 1, count: 10), header: header, conversationKey: key, signer: f.b.signing,
            random: DeterministicRandom(seed: 1))
        var m = Cloak_V1_ChangeSet()
        m.version = 1
        m.accountID = Data(header.account.bytes)
        m.conversationID = Data(header.conversation.bytes)
        m.author = Data(header.author.bytes)
        m.seq = 1
        m.prevHash = Data(ChangeSetHash.zero.bytes)
        m.epoch = 1
        m.deviceLogIndex = header.deviceLogIndex
        m.deviceLogHead = Data(header.deviceLogHead.bytes)
        m.nonce = Data(snapshot.nonce)
        m.ciphertext = Data(snapshot.ciphertext)
        m.commitment = Data(snapshot.commitment)
        m.signature = Data(snapshot.signature)
        let confused = try ChangeSet(wire: FrameCodec.serialize(m))
        #expect(throws: ProtocolError.badSignature("change set")) {
            try confused.verifySignature(f.b.signing.publicKey)
        }
        #expect(throws: CryptoError.commitmentMismatch) { try ChangeSetSealer.open(confused, conversationKey: key) }
    }

    @Test("ADV-24 derived keys are pairwise distinct across conversation, epoch and purpose")
    func keySeparation() throws {
        var keys: Set<[UInt8]> = []
        let epochKey = AccountFixture.epochKey(1)
        let conversations = (0..<6).map { ConversationID(unchecked: [UInt8](repeating: UInt8($0), count: 16)) }
        for conversation in conversations {
            for epoch in UInt64(1)...4 {
                let c = ConversationKeys.conversationKey(epochKey: epochKey, conversation: conversation, epoch: epoch)
                keys.insert(c.secret.copyBytes())
                keys.insert(
                    ConversationKeys.changeSetKey(conversationKey: c, conversation: conversation, epoch: epoch)
                        .secret.copyBytes())
                keys.insert(
                    ConversationKeys.snapshotKey(conversationKey: c, conversation: conversation, epoch: epoch)
                        .secret.copyBytes())
            }
        }
        #expect(keys.count == conversations.count * 4 * 3)
    }

    @Test("ADV-26 ADV-14 bodies of 0...255 bytes give one ciphertext length; equal bodies differ on the wire")
    func lengthHiding() throws {
        let f = try AccountFixture()
        var lengths: Set<Int> = []
        for length in stride(from: 0, through: 255, by: 15) {
            lengths.insert(try f.seal(by: f.a, seq: 1, body: Array(repeating: 0x41, count: length)).ciphertext.count)
        }
        #expect(lengths == [256 + 16])
        let one = try f.seal(by: f.a, seq: 1, nonceSeed: 1)
        let two = try f.seal(by: f.a, seq: 1, nonceSeed: 2)
        #expect(one.header.nonce != two.header.nonce && one.ciphertext != two.ciphertext && one.hash != two.hash)
    }

    @Test("a sealed change set never exceeds maxChangeSetBytes, even with every varint at its widest")
    func sizeLimit() throws {
        let f = try AccountFixture()
        let limit = 64 * 1024
        var header = ChangeSetHeader(
            account: f.log.account, conversation: AccountFixture.conversation, author: f.a.id, seq: .max,
            prevHash: ChangeSetHash(hashing: [1]), epoch: .max, deviceLogIndex: .max, deviceLogHead: f.log.head)
        header.nonce = []
        var largest = 0
        for length in stride(from: limit - 4000, to: limit, by: 37) {
            let body = [UInt8](repeating: 1, count: length)
            do {
                let cs = try ChangeSetSealer.seal(
                    body: body, header: header, conversationKey: AccountFixture.epochKey(1), signer: f.a.signing,
                    random: DeterministicRandom(seed: 2), maxBytes: limit)
                #expect(cs.wire.count <= limit)
                #expect(cs.wire.count - Padding.paddedLength(for: length) <= ChangeSet.maxWireOverhead)
                largest = max(largest, cs.wire.count)
            } catch {
                #expect(error == .changeSetTooLarge(size: length, limit: limit))
            }
        }
        #expect(largest > 0)
    }
}

extension Hex {
    /// Decodes a constant known to be valid hex.
    static func decodeOrEmpty(_ text: String) -> [UInt8] { (try? decode(text)) ?? [] }
}
