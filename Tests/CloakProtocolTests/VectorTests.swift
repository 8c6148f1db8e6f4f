@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import CloakVectors
import Foundation
import Testing

/// `Protocol/vectors/*.json`: the files regenerate byte for byte from the code, and every case
/// decodes, verifies and decrypts from its own inputs. Where PROTOCOL.md gives a byte layout,
/// the test assembles it independently from the vector's fields, so spec and code cannot drift.
@Suite("Protocol vectors")
struct VectorTests {
    static func load<T: Decodable>(_ name: String, as: T.Type) throws -> [T] {
        let url = TestData.repositoryRoot.appendingPathComponent("Protocol/vectors").appendingPathComponent(name)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode([T].self, from: Data(contentsOf: url))
    }

    @Test("every vector file regenerates byte-identically from the code")
    func regenerates() throws {
        let files = try ProtocolVectors.files()
        #expect(files.count == 14)
        for file in files {
            let url = TestData.repositoryRoot.appendingPathComponent("Protocol/vectors").appendingPathComponent(
                file.name)
            let committed = try String(contentsOf: url, encoding: .utf8)
            #expect(committed == file.contents, "\(file.name) is stale: run `swift run cloak-vectors write`")
        }
        TestData.report("vectors: \(files.count) files regenerate byte-identically")
    }

    struct ChangeSetVector: Decodable {
        let name, signingSeedHex, authorPublicKeyHex, epochKeyHex, conversationKeyHex, aeadKeyHex: String
        let version: UInt32
        let kind: UInt8
        let accountIdHex, conversationIdHex, authorHex: String
        let seq: UInt64
        let prevHashHex: String
        let epoch, deviceLogIndex: UInt64
        let deviceLogHeadHex, nonceHex, bodyHex, plaintextHex, adHex, ciphertextHex, commitmentHex: String
        let signedMessageHex, signatureHex, wireHex, hashHex: String
    }

    @Test("change_set.json: decodes, verifies, decrypts and reseals to the same bytes")
    func changeSets() throws {
        let vectors = try Self.load("change_set.json", as: ChangeSetVector.self)
        #expect(vectors.count == 4)
        for v in vectors {
            let signer = try Ed25519PrivateKey(seed: SecretBytes(copying: Hex.decode(v.signingSeedHex)))
            #expect(Hex.encode(signer.publicKey.bytes) == v.authorPublicKeyHex)
            #expect(DeviceID(signingKey: signer.publicKey).hex == v.authorHex)
            let cs = try ChangeSet(wire: Hex.decode(v.wireHex))
            let h = cs.header
            #expect(h.version == v.version && h.seq == v.seq && h.epoch == v.epoch)
            #expect(h.account.hex == v.accountIdHex && h.conversation.hex == v.conversationIdHex)
            #expect(h.author.hex == v.authorHex && h.prevHash.hex == v.prevHashHex)
            #expect(h.deviceLogIndex == v.deviceLogIndex && h.deviceLogHead.hex == v.deviceLogHeadHex)
            #expect(Hex.encode(h.nonce) == v.nonceHex)

            // AD and signed message, assembled from the spec's layout (PROTOCOL.md §"Change sets").
            var ad = Array("cloak.v1.change-set.ad".utf8) + [0] + v.version.littleEndianBytes + [v.kind]
            ad += try Hex.decode(v.accountIdHex) + Hex.decode(v.conversationIdHex) + Hex.decode(v.authorHex)
            ad += v.seq.littleEndianBytes + (try Hex.decode(v.prevHashHex)) + v.epoch.littleEndianBytes
            ad += v.deviceLogIndex.littleEndianBytes + (try Hex.decode(v.deviceLogHeadHex))
            #expect(Hex.encode(ad) == v.adHex && h.associatedData == ad)
            let ct = try Hex.decode(v.ciphertextHex)
            let signed =
                Array("cloak.v1.change-set.sig".utf8) + [0] + ad + (try Hex.decode(v.nonceHex))
                + (try Hex.decode(v.commitmentHex)) + UInt64(ct.count).littleEndianBytes + ct
            #expect(Hex.encode(signed) == v.signedMessageHex && cs.signedMessage == signed)
            #expect(Hex.encode(cs.signature) == v.signatureHex)
            #expect(Hex.encode(BLAKE2b.hash(signed, outputByteCount: 32)) == v.hashHex && cs.hash.hex == v.hashHex)
            try cs.verifySignature(signer.publicKey)

            // Keys, commitment, decryption.
            let conversation = h.conversation
            let epochKey = try SymmetricKey(bytes: Hex.decode(v.epochKeyHex))
            let conversationKey = ConversationKeys.conversationKey(
                epochKey: epochKey, conversation: conversation, epoch: v.epoch)
            #expect(Hex.encode(conversationKey.secret.copyBytes()) == v.conversationKeyHex)
            let aead = ConversationKeys.changeSetKey(
                conversationKey: conversationKey, conversation: conversation, epoch: v.epoch)
            #expect(Hex.encode(aead.secret.copyBytes()) == v.aeadKeyHex)
            let commitment = CommittedAEAD.commitment(key: aead, nonce: h.nonce, associatedData: ad, ciphertext: ct)
            #expect(Hex.encode(commitment) == v.commitmentHex)
            let plaintext = try XChaCha20Poly1305.open(
                .init(nonce: h.nonce, ciphertext: ct), key: aead, associatedData: ad)
            #expect(Hex.encode(plaintext) == v.plaintextHex)
            #expect(plaintext.count == Padding.paddedLength(for: try Hex.decode(v.bodyHex).count))
            #expect(Hex.encode(try Padding.unpad(plaintext)) == v.bodyHex)
            #expect(Hex.encode(try ChangeSetSealer.open(cs, conversationKey: conversationKey)) == v.bodyHex)

            // Resealing with the vector's nonce through the injected randomness gives the same wire bytes.
            var template = h
            template.nonce = []
            let again = try ChangeSetSealer.seal(
                body: Hex.decode(v.bodyHex), header: template, conversationKey: conversationKey, signer: signer,
                random: FixedBytesRandom(Hex.decode(v.nonceHex)))
            #expect(Hex.encode(again.wire) == v.wireHex)
        }
    }

    struct SnapshotVector: Decodable {
        struct Cover: Decodable { let deviceHex: String; let seq: UInt64; let hashHex: String }
        let name, signingSeedHex, epochKeyHex, conversationKeyHex, aeadKeyHex: String
        let version: UInt32
        let kind: UInt8
        let accountIdHex, conversationIdHex, authorHex: String
        let snapshotSeq: UInt64
        let prevSnapshotHashHex: String
        let epoch, deviceLogIndex: UInt64
        let deviceLogHeadHex: String
        let covers: [Cover]
        let nonceHex, bodyHex, plaintextHex, adHex, ciphertextHex, commitmentHex: String
        let signedMessageHex, signatureHex, wireHex, hashHex: String
    }

    @Test("snapshot.json: decodes, verifies, decrypts; lineage links the second to the first (ADV-12)")
    func snapshots() throws {
        let vectors = try Self.load("snapshot.json", as: SnapshotVector.self)
        #expect(vectors.count == 2)
        #expect(vectors[1].prevSnapshotHashHex == vectors[0].hashHex)
        for v in vectors {
            let signer = try Ed25519PrivateKey(seed: SecretBytes(copying: Hex.decode(v.signingSeedHex)))
            let snapshot = try Snapshot(
                message: FrameCodec.parse(Cloak_V1_Snapshot.self, from: Hex.decode(v.wireHex), what: "snapshot"))
            let h = snapshot.header
            var ad = Array("cloak.v1.snapshot.ad".utf8) + [0] + v.version.littleEndianBytes + [v.kind]
            ad += try Hex.decode(v.accountIdHex) + Hex.decode(v.conversationIdHex) + Hex.decode(v.authorHex)
            ad += v.snapshotSeq.littleEndianBytes + (try Hex.decode(v.prevSnapshotHashHex)) + v.epoch.littleEndianBytes
            ad += v.deviceLogIndex.littleEndianBytes + (try Hex.decode(v.deviceLogHeadHex))
            ad += UInt32(v.covers.count).littleEndianBytes
            for c in v.covers { ad += try Hex.decode(c.deviceHex) + c.seq.littleEndianBytes + Hex.decode(c.hashHex) }
            #expect(Hex.encode(ad) == v.adHex && h.associatedData == ad)
            let ct = try Hex.decode(v.ciphertextHex)
            let signed =
                Array("cloak.v1.snapshot.sig".utf8) + [0] + ad + (try Hex.decode(v.nonceHex))
                + (try Hex.decode(v.commitmentHex)) + UInt64(ct.count).littleEndianBytes + ct
            #expect(Hex.encode(signed) == v.signedMessageHex && snapshot.signedMessage == signed)
            #expect(snapshot.hash.hex == v.hashHex && Hex.encode(BLAKE2b.hash(signed)) == v.hashHex)
            try snapshot.verifySignature(signer.publicKey)
            let conversationKey = try SymmetricKey(bytes: Hex.decode(v.conversationKeyHex))
            let aead = ConversationKeys.snapshotKey(
                conversationKey: conversationKey, conversation: h.conversation, epoch: v.epoch)
            #expect(Hex.encode(aead.secret.copyBytes()) == v.aeadKeyHex)
            let plaintext = try XChaCha20Poly1305.open(
                .init(nonce: snapshot.nonce, ciphertext: ct), key: aead, associatedData: ad)
            #expect(Hex.encode(plaintext) == v.plaintextHex)
            #expect(Hex.encode(try SnapshotSealer.open(snapshot, conversationKey: conversationKey)) == v.bodyHex)
            #expect(Hex.encode(FrameCodec.serialize(snapshot.message)) == v.wireHex)
        }
    }
}
