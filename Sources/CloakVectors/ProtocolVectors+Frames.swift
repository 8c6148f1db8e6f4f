@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
@_spi(Randomness) import CloakTesting

extension VectorWorld {
    /// The pairing payload of device B (the device A adds at log index 1) and its bundle.
    var pairingPayload: PairingPayload {
        get throws {
            PairingPayload(
                signingKey: b.signing.publicKey, agreementKey: b.agreement.publicKey,
                secret: try SymmetricKey(bytes: ProtocolVectors.material("pairing/secret", 32)),
                expiresAtMs: ProtocolVectors.baseTimeMs + PairingPayload.lifetimeMs)
        }
    }

    /// What A offers B before anything is committed: the log without B (PROTOCOL.md §21).
    var pairingOffer: Cloak_V1_PairingOffer {
        var offer = Cloak_V1_PairingOffer()
        offer.accountID = Data(account.bytes)
        offer.deviceLog = log.entries.prefix(1).map { Data($0.wire) }
        offer.acceptor = Data(a.id.bytes)
        return offer
    }

    /// The offer sealed for the offer mailbox with the vectors' fixed nonce.
    var sealedOffer: [UInt8] {
        get throws {
            try pairingPayload.seal(
                FrameCodec.serialize(pairingOffer), for: .offer,
                random: FixedBytesRandom(ProtocolVectors.material("pairing/bundle-nonce", 24)))
        }
    }

    func pairingCase() throws -> VectorJSON {
        let payload = try pairingPayload
        let offeredHead = log.entries[0].hash
        let nonce = ProtocolVectors.material("pairing/bundle-nonce", 24)
        var wire = Cloak_V1_PairingPayload()
        wire.version = ProtocolVersion.current
        wire.deviceSigningKey = Data(payload.signingKey.bytes)
        wire.deviceAgreementKey = Data(payload.agreementKey.bytes)
        wire.secret = Data(payload.secret.secret.copyBytes())
        wire.expiresAtMs = payload.expiresAtMs
        return .object([
            ("name", .string("A offers B the log")), ("device_signing_key_hex", .hex(payload.signingKey.bytes)),
            ("device_agreement_key_hex", .hex(payload.agreementKey.bytes)),
            ("secret_hex", .hex(payload.secret.secret.copyBytes())), ("expires_at_ms", .int(payload.expiresAtMs)),
            ("payload_wire_hex", .hex(FrameCodec.serialize(wire))), ("text", .string(payload.text)),
            ("offer_mailbox_id_hex", .hex(payload.mailboxID(.offer))),
            ("answer_mailbox_id_hex", .hex(payload.mailboxID(.answer))),
            ("result_mailbox_id_hex", .hex(payload.mailboxID(.result))),
            ("pairing_key_hex", .hex(payload.pairingKey.secret.copyBytes())),
            ("account_id_hex", .hex(account.bytes)), ("offered_head_hex", .hex(offeredHead.bytes)),
            ("sas", .string(payload.shortAuthenticationString(account: account, offeredHead: offeredHead))),
            ("offer_plaintext_hex", .hex(FrameCodec.serialize(pairingOffer))),
            ("offer_ad_hex", .hex(payload.associatedData(.offer))), ("offer_nonce_hex", .hex(nonce)),
            ("offer_hex", .hex(try sealedOffer)),
        ])
    }

    /// One valid frame per body type.
    func sampleFrames() throws -> [(name: String, frame: Cloak_V1_Frame)] {
        let bodies = try serverBodies() + clientBodies()
        return bodies.enumerated().map { index, body in
            var frame = Cloak_V1_Frame()
            frame.requestID = UInt64(index + 1)
            frame.body = body
            return (body.name, frame)
        }
    }

    private var wires: [Data] { changeSets.map { Data($0.changeSet.wire) } }

    private func serverBodies() throws -> [Cloak_V1_Frame.OneOf_Body] {
        var hello = Cloak_V1_ServerHello()
        hello.versions = [ProtocolVersion.current]
        hello.nonce = Data(ProtocolVectors.material("frames/server-nonce", 32))
        hello.serverTimeMs = ProtocolVectors.baseTimeMs
        hello.limits = ProtocolLimits().wire
        var authResult = Cloak_V1_AuthResult()
        authResult.headCursor = UInt64(changeSets.count)
        authResult.deviceLogLength = UInt64(log.entries.count)
        var error = Cloak_V1_Error()
        error.code = .fork
        error.message = ProtocolError.fork("seq 2 already holds another change set").message
        var ack = Cloak_V1_PushAck()
        ack.results = changeSets.enumerated().map { i, c in
            var r = Cloak_V1_PushResult()
            r.hash = Data(c.changeSet.hash.bytes)
            r.cursor = UInt64(i + 1)
            r.duplicate = i == 0
            return r
        }
        var deliver = Cloak_V1_Deliver()
        deliver.items = wires.enumerated().map { i, wire in
            var item = Cloak_V1_StoredChangeSet()
            item.cursor = UInt64(i + 1)
            item.changeSet = wire
            return item
        }
        deliver.caughtUp = true
        var entries = Cloak_V1_DeviceLogEntries()
        entries.entries = log.entries.map { Data($0.wire) }
        var envelopes = Cloak_V1_KeyEnvelopes()
        envelopes.envelopes = envelopeCases.map(\.envelope.message)
        var snapshots = Cloak_V1_SnapshotList()
        snapshots.snapshots = snapshotCases.map(\.snapshot.message)
        var mailbox = Cloak_V1_MailboxContent()
        mailbox.payload = Data(try sealedOffer)
        var pong = Cloak_V1_Pong()
        pong.nonce = 7
        var evaluation = Cloak_V1_RecoveryEvaluation()
        evaluation.evaluatedElement = Data(try sampleElement("frames/evaluated-element"))
        evaluation.keyVersion = 1
        evaluation.attemptsLeft = 9
        var notice = Cloak_V1_AccountNotice()
        notice.deviceLogLength = UInt64(log.entries.count)
        notice.recovery.atMs = ProtocolVectors.baseTimeMs
        notice.recovery.consecutiveFailures = 1
        return [
            .serverHello(hello), .authResult(authResult), .error(error), .pushAck(ack), .deliver(deliver),
            .deviceLogEntries(entries), .keyEnvelopes(envelopes), .snapshots(snapshots), .mailboxContent(mailbox),
            .recoveryBlob(recoveryBlob), .pong(pong), .done(Cloak_V1_Done()), .recoveryEvaluation(evaluation),
            .accountNotice(notice),
        ]
    }

    private var recoveryBlob: Cloak_V1_RecoveryBlob {
        var blob = Cloak_V1_RecoveryBlob()
        blob.accountID = Data(account.bytes)
        blob.recoveryKeyID = Data(recovery.id.bytes)
        blob.kdfParameters = Data(RecoverySecret.wordsParameterMarker)
        return blob
    }

    private func clientBodies() throws -> [Cloak_V1_Frame.OneOf_Body] {
        var register = Cloak_V1_Register()
        register.genesis = Data(log.entries[0].wire)
        var authenticate = Cloak_V1_Authenticate()
        authenticate.version = ProtocolVersion.current
        authenticate.accountID = Data(account.bytes)
        authenticate.deviceID = Data(a.id.bytes)
        authenticate.signature = Data(
            AuthChallenge.sign(
                serverNonce: ProtocolVectors.material("frames/server-nonce", 32), account: account, device: a.id,
                key: a.signing))
        var subscribe = Cloak_V1_Subscribe()
        subscribe.afterCursor = 1
        subscribe.conversationIds = [Data(conversation.bytes), Data(ConversationID.library.bytes)]
        var push = Cloak_V1_Push()
        push.changeSets = wires
        var append = Cloak_V1_AppendDeviceLog()
        append.entry = Data(log.entries[log.entries.count - 1].wire)
        var fetchLog = Cloak_V1_FetchDeviceLog()
        fetchLog.accountID = Data(account.bytes)
        fetchLog.fromIndex = 2
        var putEnvelopes = Cloak_V1_PutKeyEnvelopes()
        putEnvelopes.envelopes = envelopeCases.map(\.envelope.message)
        var fetchEnvelopes = Cloak_V1_FetchKeyEnvelopes()
        fetchEnvelopes.fromEpoch = 1
        var putSnapshot = Cloak_V1_PutSnapshot()
        putSnapshot.snapshot = snapshotCases[0].snapshot.message
        var fetchSnapshots = Cloak_V1_FetchSnapshots()
        fetchSnapshots.conversationIds = [Data(conversation.bytes)]
        let payload = try pairingPayload
        var mailboxPut = Cloak_V1_MailboxPut()
        mailboxPut.mailboxID = Data(payload.mailboxID(.offer))
        mailboxPut.payload = Data(try sealedOffer)
        mailboxPut.ttlSeconds = 600
        var mailboxTake = Cloak_V1_MailboxTake()
        mailboxTake.mailboxID = Data(payload.mailboxID(.offer))
        var putRecovery = Cloak_V1_PutRecovery()
        putRecovery.blob = recoveryBlob
        var fetchRecovery = Cloak_V1_FetchRecovery()
        fetchRecovery.recoveryKeyID = Data(recovery.id.bytes)
        var ackCursor = Cloak_V1_AckCursor()
        ackCursor.cursor = 3
        var ping = Cloak_V1_Ping()
        ping.nonce = 7
        var fetchChangeSets = Cloak_V1_FetchChangeSets()
        fetchChangeSets.conversationID = Data(conversation.bytes)
        fetchChangeSets.author = Data(a.id.bytes)
        fetchChangeSets.fromSeq = 1
        fetchChangeSets.toSeq = 2
        var evaluate = Cloak_V1_RecoveryEvaluate()
        evaluate.accountID = Data(account.bytes)
        evaluate.blindedElement = Data(try sampleElement("frames/blinded-element"))
        return [
            .register(register), .authenticate(authenticate), .subscribe(subscribe), .push(push),
            .appendDeviceLog(append), .fetchDeviceLog(fetchLog), .putKeyEnvelopes(putEnvelopes),
            .fetchKeyEnvelopes(fetchEnvelopes), .putSnapshot(putSnapshot), .fetchSnapshots(fetchSnapshots),
            .mailboxPut(mailboxPut), .mailboxTake(mailboxTake), .putRecovery(putRecovery),
            .fetchRecovery(fetchRecovery), .ackCursor(ackCursor), .ping(ping), .fetchChangeSets(fetchChangeSets),
            .recoveryEvaluate(evaluate), .resetRecoveryLockout(Cloak_V1_ResetRecoveryLockout()),
        ]
    }

    /// A valid ristretto255 element derived from the named material (an OPRF evaluation of it).
    private func sampleElement(_ name: String) throws -> [UInt8] {
        let key = try OPRF.PrivateKey(seed: SecretBytes(copying: ProtocolVectors.material(name, 32)), info: [])
        let blind = try OPRF.blind(
            ProtocolVectors.material(name + "/input", 16),
            using: FixedBytesRandom(ProtocolVectors.material(name + "/blind", 64)))
        return try key.blindEvaluate(blind.blindedElement).bytes
    }
}
