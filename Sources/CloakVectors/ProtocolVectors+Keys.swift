@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
@_spi(Randomness) import CloakTesting

/// One `sealed_key.json` case: an epoch key in a signed key envelope.
struct EnvelopeCase {
    enum Recipient {
        case device(VectorDevice)
        case recovery(RecoveryKeys)

        var id: DeviceID {
            switch self {
            case .device(let d): d.id
            case .recovery(let r): r.id
            }
        }
        var agreement: X25519PrivateKey {
            switch self {
            case .device(let d): d.agreement
            case .recovery(let r): r.agreement
            }
        }
    }

    let name: String
    let sender: VectorDevice
    let recipient: Recipient
    let key: [UInt8]
    let ephemeralSeed: [UInt8]
    let envelope: KeyEnvelope

    static func make(
        _ name: String, account: AccountID, epoch: UInt64, key: [UInt8], sender: VectorDevice, recipient: Recipient
    ) throws -> EnvelopeCase {
        let ephemeralSeed = ProtocolVectors.material("envelope/\(name)/ephemeral-seed", 32)
        let envelope = try KeyEnvelope.seal(
            SymmetricKey(bytes: key), epoch: epoch, account: account, recipient: recipient.id,
            recipientKey: recipient.agreement.publicKey, sender: sender.id, signer: sender.signing,
            random: FixedBytesRandom(ephemeralSeed))
        return EnvelopeCase(
            name: name, sender: sender, recipient: recipient, key: key, ephemeralSeed: ephemeralSeed, envelope: envelope
        )
    }

    var json: VectorJSON {
        let e = envelope
        return .object([
            ("name", .string(name)), ("version", .int(UInt64(e.version))), ("account_id_hex", .hex(e.account.bytes)),
            ("epoch", .int(e.epoch)), ("sender_hex", .hex(e.sender.bytes)), ("sender_seed_hex", .hex(sender.seed)),
            ("recipient_hex", .hex(e.recipient.bytes)),
            ("recipient_secret_key_hex", .hex(recipient.agreement.secret.copyBytes())),
            ("recipient_public_key_hex", .hex(recipient.agreement.publicKey.bytes)),
            ("key_hex", .hex(key)),
            (
                "plaintext_hex",
                .hex(KeyEnvelope.innerPlaintext(account: e.account, epoch: e.epoch, recipient: e.recipient, key: key))
            ),
            ("ephemeral_seed_hex", .hex(ephemeralSeed)),
            ("ephemeral_public_key_hex", .hex(Array(e.sealedKey.prefix(32)))),
            ("sealed_hex", .hex(e.sealedKey)), ("signed_message_hex", .hex(e.signedMessage)),
            ("signature_hex", .hex(e.signature)), ("wire_hex", .hex(FrameCodec.serialize(e.message))),
        ])
    }
}

/// One `conversation_key.json` case: one conversation's key of one epoch in a signed
/// conversation-key envelope to an assistant (PROTOCOL.md §29).
struct ConversationKeyCase {
    let name: String
    let sender: VectorDevice
    let recipient: VectorDevice
    let epochKey: [UInt8]
    let key: [UInt8]
    let ephemeralSeed: [UInt8]
    let envelope: ConversationKeyEnvelope

    /// The key of `conversation` in `epoch` (derived from `epochKey`), sealed by `sender` to
    /// the assistant `recipient`.
    static func make(
        _ name: String, account: AccountID, epoch: UInt64, epochKey: [UInt8], conversation: ConversationID,
        sender: VectorDevice, recipient: VectorDevice
    ) throws -> ConversationKeyCase {
        let key = KeyDerivation.derive(
            from: try SymmetricKey(bytes: epochKey), purpose: .conversation, subject: conversation.bytes, epoch: epoch)
        let ephemeralSeed = ProtocolVectors.material("conversation-key/\(name)/ephemeral-seed", 32)
        let envelope = try ConversationKeyEnvelope.seal(
            key, conversation: conversation, epoch: epoch, account: account, recipient: recipient.id,
            recipientKey: recipient.agreement.publicKey, sender: sender.id, signer: sender.signing,
            random: FixedBytesRandom(ephemeralSeed))
        return ConversationKeyCase(
            name: name, sender: sender, recipient: recipient, epochKey: epochKey, key: key.secret.copyBytes(),
            ephemeralSeed: ephemeralSeed, envelope: envelope)
    }

    var json: VectorJSON {
        let e = envelope
        return .object([
            ("name", .string(name)), ("version", .int(UInt64(e.version))), ("account_id_hex", .hex(e.account.bytes)),
            ("epoch", .int(e.epoch)), ("conversation_id_hex", .hex(e.conversation.bytes)),
            ("sender_hex", .hex(e.sender.bytes)), ("sender_seed_hex", .hex(sender.seed)),
            ("recipient_hex", .hex(e.recipient.bytes)), ("recipient_secret_key_hex", .hex(recipient.agreementSecret)),
            ("recipient_public_key_hex", .hex(recipient.agreement.publicKey.bytes)),
            ("epoch_key_hex", .hex(epochKey)), ("key_hex", .hex(key)),
            (
                "plaintext_hex",
                .hex(ConversationKeyEnvelope.innerPlaintext(
                    account: e.account, epoch: e.epoch, conversation: e.conversation, recipient: e.recipient, key: key))
            ),
            ("ephemeral_seed_hex", .hex(ephemeralSeed)),
            ("ephemeral_public_key_hex", .hex(Array(e.sealedKey.prefix(32)))),
            ("sealed_hex", .hex(e.sealedKey)), ("signed_message_hex", .hex(e.signedMessage)),
            ("signature_hex", .hex(e.signature)), ("wire_hex", .hex(FrameCodec.serialize(e.message))),
        ])
    }
}

extension VectorWorld {
    func authCases() throws -> [VectorJSON] {
        let signers: [(String, [UInt8], Ed25519PrivateKey)] = [
            ("device A", a.seed, a.signing),
            ("the recovery key", recovery.signing.seed.copyBytes(), recovery.signing),
        ]
        return signers.map { name, seed, key in
            let device = DeviceID(signingKey: key.publicKey)
            let nonce = ProtocolVectors.material("auth/\(name)/server-nonce", 32)
            return .object([
                ("name", .string("\(name) authenticates")), ("version", .int(UInt64(ProtocolVersion.current))),
                ("server_nonce_hex", .hex(nonce)), ("device_seed_hex", .hex(seed)),
                ("device_public_key_hex", .hex(key.publicKey.bytes)), ("account_id_hex", .hex(account.bytes)),
                ("device_id_hex", .hex(device.bytes)),
                (
                    "signed_message_hex",
                    .hex(AuthChallenge.message(serverNonce: nonce, account: account, device: device))
                ),
                (
                    "signature_hex",
                    .hex(AuthChallenge.sign(serverNonce: nonce, account: account, device: device, key: key))
                ),
            ])
        }
    }

    func derivationCases() throws -> [VectorJSON] {
        func derivation(
            _ name: String, root: [UInt8], purpose: KeyDerivation.Purpose, subject: [UInt8], epoch: UInt64,
            conversation: Bool
        ) throws -> VectorJSON {
            let rootKey = try SymmetricKey(bytes: root)
            let derived = KeyDerivation.derive(from: rootKey, purpose: purpose, subject: subject, epoch: epoch)
            var members: [(String, VectorJSON)] = [
                ("name", .string(name)), ("root_key_hex", .hex(root)), ("purpose", .string(purpose.rawValue)),
                ("subject_hex", .hex(subject)),
            ]
            if conversation { members.append(("conversation_id_hex", .hex(subject))) }
            members += [
                ("epoch", .int(epoch)),
                ("input_hex", .hex(KeyDerivation.input(purpose: purpose, subject: subject, epoch: epoch))),
                ("derived_key_hex", .hex(derived.secret.copyBytes())),
            ]
            return .object(members)
        }
        let e1 = epochKeys[1] ?? []
        let conversationKey = KeyDerivation.derive(
            from: try SymmetricKey(bytes: e1), purpose: .conversation, subject: conversation.bytes,
            epoch: 1
        ).secret.copyBytes()
        let x = conversation.bytes
        return try [
            derivation(
                "conversation key of X, epoch 1", root: e1, purpose: .conversation, subject: x, epoch: 1,
                conversation: true),
            derivation(
                "change-set AEAD key of X, epoch 1", root: conversationKey, purpose: .changeSetAEAD, subject: x,
                epoch: 1, conversation: true),
            derivation(
                "snapshot AEAD key of X, epoch 1", root: conversationKey, purpose: .snapshotAEAD, subject: x,
                epoch: 1, conversation: true),
            derivation(
                "conversation key of the library, epoch 2", root: epochKeys[2] ?? [], purpose: .conversation,
                subject: ConversationID.library.bytes, epoch: 2, conversation: true),
            derivation(
                "pairing bundle key", root: ProtocolVectors.material("pairing/secret", 32), purpose: .pairing,
                subject: b.signing.publicKey.bytes, epoch: 0, conversation: false),
            derivation(
                "recovery signing seed", root: recoveryRoot, purpose: .recovery, subject: Array("sign".utf8),
                epoch: 0, conversation: false),
            derivation(
                "recovery X25519 secret", root: recoveryRoot, purpose: .recovery, subject: Array("agree".utf8),
                epoch: 0, conversation: false),
        ]
    }

    /// The recovery root of the word-based secret: keyed BLAKE2b-256 (PROTOCOL.md §"Recovery").
    var recoveryRoot: [UInt8] {
        BLAKE2b.hash(Domain.recovery.bytes + Array("words".utf8), key: SecretBytes(copying: recoveryEntropy))
    }

    func recoveryCases() throws -> [VectorJSON] {
        let secret = RecoverySecret(entropy: SecretBytes(copying: recoveryEntropy))
        let fromWords = recoveryJSON(
            "12 words", root: recoveryRoot, keys: secret.keys,
            extra: [
                ("entropy_hex", .hex(recoveryEntropy)), ("words", .string(secret.words)),
                ("kdf_parameters_hex", .hex(RecoverySecret.wordsParameterMarker)),
            ])
        let enrollment = RecoveryEnrollment(
            keyVersion: 1,
            argon2: try PasswordKDFParameters(
                opsLimit: PasswordKDFParameters.floorOpsLimit, memoryKiB: PasswordKDFParameters.floorMemoryKiB,
                salt: ProtocolVectors.material("recovery/salt", 16)))
        let passphrase = "correct horse battery staple wagon"
        let seed = ProtocolVectors.material("recovery/oprf-seed", 32)
        let serverKey = try OPRF.PrivateKey(
            seed: SecretBytes(copying: seed), info: RecoveryPassphrase.keyInfo(account: account, keyVersion: 1))
        let input = RecoveryPassphrase.oprfInput(account: account, passphrase: try RecoveryPassphrase.normalized(passphrase))
        let blindBytes = ProtocolVectors.material("recovery/oprf-blind", 64)
        let blind = try OPRF.blind(input, using: FixedBytesRandom(blindBytes))
        let evaluated = try serverKey.blindEvaluate(blind.blindedElement)
        let output = try blind.finalize(evaluatedElement: evaluated)
        let root = try RecoveryPassphrase.root(oprfOutput: output, account: account, enrollment: enrollment)
        let fromPassphrase = recoveryJSON(
            "passphrase through the server's OPRF, at the Argon2id floors", root: root.secret.copyBytes(),
            keys: RecoveryKeys(root: root),
            extra: [
                ("passphrase", .string(passphrase)), ("account_id_hex", .hex(account.bytes)),
                ("oprf_seed_hex", .hex(seed)), ("key_version", .int(1)),
                ("oprf_key_info_hex", .hex(RecoveryPassphrase.keyInfo(account: account, keyVersion: 1))),
                ("oprf_input_hex", .hex(input)), ("blind_random_hex", .hex(blindBytes)),
                ("blinded_element_hex", .hex(blind.blindedElement.bytes)),
                ("evaluated_element_hex", .hex(evaluated.bytes)), ("oprf_output_hex", .hex(output.copyBytes())),
                ("ops_limit", .int(UInt64(enrollment.argon2.opsLimit))),
                ("memory_kib", .int(UInt64(enrollment.argon2.memoryKiB))), ("salt_hex", .hex(enrollment.argon2.salt)),
                ("kdf_parameters_hex", .hex(enrollment.encoded)),
            ])
        return [fromWords, fromPassphrase]
    }

    private func recoveryJSON(
        _ name: String, root: [UInt8], keys: RecoveryKeys, extra: [(String, VectorJSON)]
    )
        -> VectorJSON
    {
        .object(
            [("name", .string(name))] + extra + [
                ("root_key_hex", .hex(root)), ("signing_seed_hex", .hex(keys.signing.seed.copyBytes())),
                ("signing_public_key_hex", .hex(keys.signing.publicKey.bytes)),
                ("agreement_secret_key_hex", .hex(keys.agreement.secret.copyBytes())),
                ("agreement_public_key_hex", .hex(keys.agreement.publicKey.bytes)),
                ("recovery_key_id_hex", .hex(keys.id.bytes)),
            ])
    }

    static func paddingCases() throws -> [VectorJSON] {
        var cases: [VectorJSON] = []
        for length in [0, 1, 255, 256, 300, 1000, 5000, 70_000, 1_000_000] {
            cases.append(
                .object([
                    ("message_length", .int(UInt64(length))),
                    ("padded_length", .int(UInt64(Padding.paddedLength(for: length)))),
                ]))
        }
        let message = Array("cloak".utf8)
        cases.append(
            .object([
                ("message_length", .int(UInt64(message.count))),
                ("padded_length", .int(UInt64(Padding.paddedLength(for: message.count)))),
                ("message_hex", .hex(message)), ("padded_hex", .hex(try Padding.pad(message))),
            ]))
        return cases
    }
}
