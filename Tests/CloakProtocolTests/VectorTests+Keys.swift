@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

extension VectorTests {
    struct LogVector: Decodable {
        struct Cutoff: Decodable { let conversationIdHex: String; let seq: UInt64; let hashHex: String }
        let name, kind: String
        let kindValue: UInt8
        let version: UInt32
        let index: UInt64
        let prevHashHex, signerHex, signerSeedHex: String
        let epoch, createdAtMs: UInt64
        let deviceSigningKeyHex, deviceAgreementKeyHex, subjectDeviceIdHex, accountNonceHex, removedDeviceHex: String?
        let cutoffs: [Cutoff]?
        let expiresAtMs: UInt64?
        let endReason: UInt8?
        let scopeHex: [String]?
        let signedMessageHex, signatureHex, wireHex, entryHashHex, accountIdHex: String
    }

    @Test("device_log.json: canonical bytes, signatures, hashes, AccountID and the verified chain")
    func deviceLog() throws {
        let vectors = try Self.load("device_log.json", as: LogVector.self)
        #expect(vectors.map(\.kind) == [
            "genesis", "add_device", "add_device", "set_recovery", "remove_device", "grant_assistant",
            "restrict_assistant", "revoke_assistant",
        ])
        var entries: [DeviceLogEntry] = []
        for v in vectors {
            let entry = try DeviceLogEntry(wire: Hex.decode(v.wireHex))
            let signer = try Ed25519PrivateKey(seed: SecretBytes(copying: Hex.decode(v.signerSeedHex)))
            #expect(DeviceID(signingKey: signer.publicKey).hex == v.signerHex && entry.signer.hex == v.signerHex)
            // Canonical entry bytes from PROTOCOL.md §"Device log".
            var canonical = Array("cloak.v1.device-log.entry".utf8) + [0] + v.version.littleEndianBytes + [v.kindValue]
            canonical += v.index.littleEndianBytes + (try Hex.decode(v.prevHashHex)) + (try Hex.decode(v.signerHex))
            canonical += v.epoch.littleEndianBytes + v.createdAtMs.littleEndianBytes
            if let key = v.deviceSigningKeyHex, let agreement = v.deviceAgreementKeyHex {
                canonical += try Hex.decode(key) + Hex.decode(agreement)
                #expect(entry.subject?.hex == v.subjectDeviceIdHex)
                #expect(Hex.encode(BLAKE2b.hash(try Hex.decode(key), outputByteCount: 16)) == v.subjectDeviceIdHex)
            }
            if let nonce = v.accountNonceHex { canonical += try Hex.decode(nonce) }
            // PROTOCOL.md §29: a grant's expiry and scope; a revocation's reason, a restriction's scope.
            var scope = UInt32((v.scopeHex ?? []).count).littleEndianBytes
            for conversation in v.scopeHex ?? [] { scope += try Hex.decode(conversation) }
            if let expires = v.expiresAtMs { canonical += expires.littleEndianBytes + scope }
            if let removed = v.removedDeviceHex, let cutoffs = v.cutoffs {
                canonical += try Hex.decode(removed)
                if let reason = v.endReason { canonical += [reason] }
                if v.kind == "restrict_assistant" { canonical += scope }
                canonical += UInt32(cutoffs.count).littleEndianBytes
                for c in cutoffs {
                    canonical += try Hex.decode(c.conversationIdHex) + c.seq.littleEndianBytes + Hex.decode(c.hashHex)
                }
            }
            #expect(Hex.encode(canonical) == v.signedMessageHex && entry.canonicalBytes == canonical)
            #expect(signer.publicKey.isValidSignature(try Hex.decode(v.signatureHex), for: canonical))
            #expect(Hex.encode(signer.signature(for: canonical)) == v.signatureHex)
            #expect(Hex.encode(BLAKE2b.hash(canonical)) == v.entryHashHex && entry.hash.hex == v.entryHashHex)
            #expect(Hex.encode(entry.wire) == v.wireHex)
            entries.append(entry)
        }
        let log = try DeviceLog(verifying: entries)
        #expect(vectors.allSatisfy { $0.accountIdHex == vectors[0].entryHashHex })
        #expect(log.account.hex == vectors[0].entryHashHex)
        #expect(log.currentEpoch == 4 && log.activeDevices.count == 2 && log.recoveryKey != nil)
        #expect(log.assistants.count == 1 && log.activeAssistants.isEmpty)
    }

    struct AuthVector: Decodable {
        let name: String
        let version: UInt32
        let serverNonceHex, deviceSeedHex, devicePublicKeyHex, accountIdHex, deviceIdHex: String
        let signedMessageHex, signatureHex: String
    }

    @Test("auth.json: the signed challenge layout and signature")
    func auth() throws {
        for v in try Self.load("auth.json", as: AuthVector.self) {
            let key = try Ed25519PrivateKey(seed: SecretBytes(copying: Hex.decode(v.deviceSeedHex)))
            #expect(Hex.encode(key.publicKey.bytes) == v.devicePublicKeyHex)
            let nonce = try Hex.decode(v.serverNonceHex)
            let account = try AccountID(validating: Hex.decode(v.accountIdHex), field: "account")
            let device = try DeviceID(validating: Hex.decode(v.deviceIdHex), field: "device")
            let layout =
                Array("cloak.v1.auth".utf8) + [0] + v.version.littleEndianBytes + nonce + account.bytes + device.bytes
            #expect(Hex.encode(layout) == v.signedMessageHex)
            #expect(AuthChallenge.message(serverNonce: nonce, account: account, device: device) == layout)
            #expect(
                Hex.encode(AuthChallenge.sign(serverNonce: nonce, account: account, device: device, key: key))
                    == v.signatureHex)
            #expect(
                AuthChallenge.verify(
                    try Hex.decode(v.signatureHex), serverNonce: nonce, account: account, device: device,
                    key: key.publicKey))
        }
    }

    struct SealedKeyVector: Decodable {
        let name: String
        let version: UInt32
        let accountIdHex: String
        let epoch: UInt64
        let senderHex, senderSeedHex, recipientHex, recipientSecretKeyHex, recipientPublicKeyHex, keyHex: String
        let plaintextHex, ephemeralSeedHex, ephemeralPublicKeyHex, sealedHex, signedMessageHex, signatureHex,
            wireHex: String
    }

    @Test("sealed_key.json: sealed boxes open to the bound key; envelopes verify and reseal identically")
    func sealedKeys() throws {
        let vectors = try Self.load("sealed_key.json", as: SealedKeyVector.self)
        #expect(vectors.count == 3)
        for v in vectors {
            let recipient = try X25519PrivateKey(secret: SecretBytes(copying: Hex.decode(v.recipientSecretKeyHex)))
            #expect(Hex.encode(recipient.publicKey.bytes) == v.recipientPublicKeyHex)
            let sealed = try Hex.decode(v.sealedHex)
            #expect(Hex.encode(sealed.prefix(32)) == v.ephemeralPublicKeyHex)
            let opened = try SealedBox.open(sealed, with: recipient)
            #expect(Hex.encode(opened) == v.plaintextHex && Hex.encode(opened.suffix(32)) == v.keyHex)
            let binding =
                Array("cloak.v1.epoch-key".utf8) + [0] + (try Hex.decode(v.accountIdHex)) + v.epoch.littleEndianBytes
                + (try Hex.decode(v.recipientHex)) + (try Hex.decode(v.keyHex))
            #expect(opened == binding)
            let sender = try Ed25519PrivateKey(seed: SecretBytes(copying: Hex.decode(v.senderSeedHex)))
            let envelope = try KeyEnvelope(
                message: FrameCodec.parse(Cloak_V1_KeyEnvelope.self, from: Hex.decode(v.wireHex), what: "envelope"))
            let signed =
                Array("cloak.v1.key-envelope".utf8) + [0] + v.version.littleEndianBytes
                + (try Hex.decode(v.accountIdHex)) + v.epoch.littleEndianBytes + (try Hex.decode(v.senderHex))
                + (try Hex.decode(v.recipientHex)) + UInt64(sealed.count).littleEndianBytes + sealed
            #expect(Hex.encode(signed) == v.signedMessageHex && envelope.signedMessage == signed)
            #expect(Hex.encode(sender.signature(for: signed)) == v.signatureHex)
            let key = try envelope.open(with: recipient, recipient: envelope.recipient, senderKey: sender.publicKey)
            #expect(Hex.encode(key.secret.copyBytes()) == v.keyHex)
            let again = try KeyEnvelope.seal(
                key, epoch: v.epoch, account: envelope.account, recipient: envelope.recipient,
                recipientKey: recipient.publicKey, sender: envelope.sender, signer: sender,
                random: FixedBytesRandom(Hex.decode(v.ephemeralSeedHex)))
            #expect(Hex.encode(again.sealedKey) == v.sealedHex)
        }
    }

    struct ConversationKeyVector: Decodable {
        let name: String
        let version: UInt32
        let accountIdHex: String
        let epoch: UInt64
        let conversationIdHex, senderHex, senderSeedHex, recipientHex, recipientSecretKeyHex, recipientPublicKeyHex: String
        let epochKeyHex, keyHex, plaintextHex, ephemeralSeedHex, ephemeralPublicKeyHex, sealedHex: String
        let signedMessageHex, signatureHex, wireHex: String
    }

    @Test("ADV-40 conversation_key.json: an assistant's envelope opens to the derived key; a changed byte is refused")
    func conversationKeys() throws {
        let vectors = try Self.load("conversation_key.json", as: ConversationKeyVector.self)
        #expect(vectors.count == 2)
        for v in vectors {
            let recipient = try X25519PrivateKey(secret: SecretBytes(copying: Hex.decode(v.recipientSecretKeyHex)))
            #expect(Hex.encode(recipient.publicKey.bytes) == v.recipientPublicKeyHex)
            let (account, conversation) = (try Hex.decode(v.accountIdHex), try Hex.decode(v.conversationIdHex))
            // The key is the conversation's key of that epoch (§7), never the epoch key itself.
            let derived = KeyDerivation.derive(
                from: try SymmetricKey(bytes: Hex.decode(v.epochKeyHex)), purpose: .conversation, subject: conversation,
                epoch: v.epoch)
            #expect(Hex.encode(derived.secret.copyBytes()) == v.keyHex && v.keyHex != v.epochKeyHex)
            let sealed = try Hex.decode(v.sealedHex)
            #expect(sealed.count == 178 && Hex.encode(sealed.prefix(32)) == v.ephemeralPublicKeyHex)
            let opened = try SealedBox.open(sealed, with: recipient)
            // PROTOCOL.md §29 "Keys: conversation-key envelopes", assembled here from the fields.
            let inner =
                Array("cloak.v1.conversation-key".utf8) + [0] + account + v.epoch.littleEndianBytes + conversation
                + (try Hex.decode(v.recipientHex)) + (try Hex.decode(v.keyHex))
            #expect(opened == inner && Hex.encode(inner) == v.plaintextHex)
            let sender = try Ed25519PrivateKey(seed: SecretBytes(copying: Hex.decode(v.senderSeedHex)))
            #expect(DeviceID(signingKey: sender.publicKey).hex == v.senderHex)
            let signed =
                Array("cloak.v1.conversation-key-envelope".utf8) + [0] + v.version.littleEndianBytes + account
                + v.epoch.littleEndianBytes + conversation + (try Hex.decode(v.senderHex)) + (try Hex.decode(v.recipientHex))
                + UInt64(sealed.count).littleEndianBytes + sealed
            #expect(Hex.encode(signed) == v.signedMessageHex)
            #expect(sender.publicKey.isValidSignature(try Hex.decode(v.signatureHex), for: signed))
            let wire = try Hex.decode(v.wireHex)
            let envelope = try ConversationKeyEnvelope(
                message: FrameCodec.parse(Cloak_V1_KeyEnvelope.self, from: wire, what: "envelope"))
            #expect(envelope.signedMessage == signed && envelope.conversation.hex == v.conversationIdHex)
            let key = try envelope.open(with: recipient, recipient: envelope.recipient, senderKey: sender.publicKey)
            #expect(Hex.encode(key.secret.copyBytes()) == v.keyHex)
            let again = try ConversationKeyEnvelope.seal(
                key, conversation: envelope.conversation, epoch: v.epoch, account: envelope.account,
                recipient: envelope.recipient, recipientKey: recipient.publicKey, sender: envelope.sender, signer: sender,
                random: FixedBytesRandom(Hex.decode(v.ephemeralSeedHex)))
            #expect(Hex.encode(again.sealedKey) == v.sealedHex && Hex.encode(FrameCodec.serialize(again.message)) == v.wireHex)
            // Every byte of the signed fields, the box and the signature counts: one changed byte
            // anywhere in the envelope is refused (or no longer parses as one).
            let message = envelope.message
            var opens = 0
            for field in [\Cloak_V1_KeyEnvelope.accountID, \.sender, \.recipient, \.sealedKey, \.signature, \.conversationID] {
                for position in [0, message[keyPath: field].count - 1] {
                    var tampered = message
                    tampered[keyPath: field][position] ^= 0x01
                    guard let changed = try? ConversationKeyEnvelope(message: tampered),
                        (try? changed.open(with: recipient, recipient: changed.recipient, senderKey: sender.publicKey)) != nil
                    else { continue }
                    opens += 1
                }
            }
            var epochChanged = message
            epochChanged.epoch += 1
            let moved = try ConversationKeyEnvelope(message: epochChanged)
            #expect(throws: KeyEnvelopeError.self) {
                try moved.open(with: recipient, recipient: moved.recipient, senderKey: sender.publicKey)
            }
            #expect(opens == 0, "a tampered envelope opened")
        }
    }

    struct DerivationVector: Decodable {
        let name, rootKeyHex, purpose, subjectHex: String
        let conversationIdHex: String?
        let epoch: UInt64
        let inputHex, derivedKeyHex: String
    }

    @Test("key_derivation.json: the KDF input layout and keyed BLAKE2b output")
    func keyDerivation() throws {
        let vectors = try Self.load("key_derivation.json", as: DerivationVector.self)
        #expect(
            Set(vectors.map(\.purpose)) == ["conversation", "change-set-aead", "snapshot-aead", "pairing", "recovery"])
        for v in vectors {
            let subject = try Hex.decode(v.subjectHex)
            let purpose = Array(v.purpose.utf8)
            let input =
                Array("cloak.v1.kdf".utf8) + UInt64(purpose.count).littleEndianBytes + purpose
                + UInt64(subject.count).littleEndianBytes + subject + v.epoch.littleEndianBytes
            #expect(Hex.encode(input) == v.inputHex)
            let root = try SymmetricKey(bytes: Hex.decode(v.rootKeyHex))
            #expect(Hex.encode(BLAKE2b.hash(input, key: root.secret)) == v.derivedKeyHex)
            let derived = KeyDerivation.derive(
                from: root, purpose: KeyDerivation.Purpose(rawValue: v.purpose), subject: subject, epoch: v.epoch)
            #expect(Hex.encode(derived.secret.copyBytes()) == v.derivedKeyHex)
            if let conversation = v.conversationIdHex { #expect(conversation == v.subjectHex) }
        }
    }

    struct PaddingVector: Decodable {
        let messageLength, paddedLength: Int
        let messageHex, paddedHex: String?
    }

    @Test("padding.json: Padmé bucket lengths and the ISO/IEC 7816-4 marker")
    func padding() throws {
        for v in try Self.load("padding.json", as: PaddingVector.self) {
            #expect(Padding.paddedLength(for: v.messageLength) == v.paddedLength)
            if let message = v.messageHex, let padded = v.paddedHex {
                let bytes = try Hex.decode(message)
                let expected = bytes + [0x80] + [UInt8](repeating: 0, count: v.paddedLength - bytes.count - 1)
                let sealed = try Padding.pad(bytes)
                #expect(Hex.encode(expected) == padded && Hex.encode(sealed) == padded)
            }
        }
    }
}
