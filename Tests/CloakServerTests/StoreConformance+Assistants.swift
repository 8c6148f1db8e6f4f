@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import CloakServer
@_spi(Randomness) import CloakTesting
import Testing

extension StoreConformance {
    /// Conversation keys sealed to an assistant (PROTOCOL.md §29; server migration v5, the
    /// `conversation_keys` table): stored per (account, recipient, epoch, conversation), the
    /// first write winning — within one batch too — read from an epoch on in (epoch,
    /// conversation) order, kept apart from the epoch-key envelopes of devices, counted in the
    /// account's bytes, and erased with the account.
    static func conversationKeys(_ store: any ServerStore) async throws {
        let a = TestAccount.make(seed: 190, devices: 2)
        let assistant = device(11)
        var batch = WriteBatch()
        batch.logEntries = [.init(account: a.account, index: 0, bytes: a.genesis.wire)]
        batch.envelopes = [
            .init(account: a.account, recipient: assistant, epoch: 2, bytes: [2, 1], conversation: conversation(1)),
            .init(account: a.account, recipient: assistant, epoch: 1, bytes: [1, 2], conversation: conversation(2)),
            .init(account: a.account, recipient: assistant, epoch: 1, bytes: [1, 1], conversation: conversation(1)),
            .init(account: a.account, recipient: a.devices[1].id, epoch: 1, bytes: [9, 9, 9]),
        ]
        try await store.commit(batch)
        var again = WriteBatch()
        again.envelopes = [
            .init(account: a.account, recipient: assistant, epoch: 1, bytes: [7, 7, 7], conversation: conversation(1)),
            .init(account: a.account, recipient: assistant, epoch: 2, bytes: [2, 2], conversation: conversation(2)),
            .init(account: a.account, recipient: assistant, epoch: 2, bytes: [6, 6, 6], conversation: conversation(2)),
        ]
        try await store.commit(again)

        #expect(try await store.keyEnvelopes(account: a.account, recipient: assistant, fromEpoch: 0) == [[1, 1], [1, 2], [2, 1], [2, 2]])
        #expect(try await store.keyEnvelopes(account: a.account, recipient: assistant, fromEpoch: 2) == [[2, 1], [2, 2]])
        #expect(try await store.keyEnvelopes(account: a.account, recipient: assistant, fromEpoch: 3) == [])
        #expect(try await store.keyEnvelopes(account: a.account, recipient: a.devices[1].id, fromEpoch: 0) == [[9, 9, 9]])
        let other = TestAccount.make(seed: 191).account
        #expect(try await store.keyEnvelopes(account: other, recipient: assistant, fromEpoch: 0) == [])
        #expect(try await store.account(a.account)?.storedBytes == 4 * 2 + 3)

        let report = try await store.eraseAccount(a.account)
        #expect(report.rows == ["device_log": 1, "key_envelopes": 1, "conversation_keys": 4, "accounts": 1])
        #expect(try await store.keyEnvelopes(account: a.account, recipient: assistant, fromEpoch: 0) == [])
    }
}

extension StoreConformance {
    /// The same rows written and read through the sync core (PutKeyEnvelopes, FetchKeyEnvelopes)
    /// over the store: a conversation key for the assistant's scope is stored once and fetched
    /// by the assistant; one outside its scope is refused and never stored.
    static func assistantKeysThroughTheServer(_ store: any ServerStore) async throws {
        var account = TestAccount.make(seed: 192)
        let assistant = TestDevice(seed: 193)
        let grant = DeviceLogEntry.grantAssistant(
            signingKey: assistant.signing.publicKey, agreementKey: assistant.agreement.publicKey, scope: [conversation(1)],
            expiresAtMs: 1_800_000_000_000, after: account.log, signer: account.devices[0].signing,
            createdAtMs: 1_700_000_000_000)
        try account.log.append(grant)
        account.devices.append(assistant)
        func sealed(_ c: ConversationID, seed: UInt64) throws -> Cloak_V1_KeyEnvelope {
            let key = KeyDerivation.derive(from: account.key, purpose: .conversation, subject: c.bytes, epoch: 1)
            return try ConversationKeyEnvelope.seal(
                key, conversation: c, epoch: 1, account: account.account, recipient: assistant.id,
                recipientKey: assistant.agreement.publicKey, sender: account.devices[0].id, signer: account.devices[0].signing,
                random: DeterministicRandom(seed: seed)
            ).message
        }
        func put(_ envelopes: [Cloak_V1_KeyEnvelope], id: UInt64) -> [UInt8] {
            var body = Cloak_V1_PutKeyEnvelopes()
            body.envelopes = envelopes
            return FrameCodec.encode(.putKeyEnvelopes(body), requestID: id)
        }
        func done(_ frame: Cloak_V1_Frame?) -> Bool { if case .done = frame?.body { true } else { false } }
        let driver = AsyncDriver(store: store)
        var owner = driver.connect(seed: 1)
        #expect(await owner.login(account, register: true))
        await owner.send(Frames.appendDeviceLog(grant, id: 3))
        #expect(done(await owner.reply(to: 3)))
        let first = try sealed(conversation(1), seed: 1)
        await owner.send(put([first], id: 4))
        #expect(done(await owner.reply(to: 4)))
        await owner.send(put([try sealed(conversation(1), seed: 2)], id: 5))  // stored already: the first stays
        #expect(done(await owner.reply(to: 5)))
        await owner.send(put([try sealed(conversation(2), seed: 3)], id: 6))
        #expect(await owner.reply(to: 6)?.errorCode == .outOfScope)

        var reader = driver.connect(seed: 2)
        #expect(await reader.login(account, device: 1))
        await reader.send(Frames.fetchKeyEnvelopes(id: 7))
        guard case .keyEnvelopes(let list) = await reader.reply(to: 7)?.body else {
            Issue.record("no KeyEnvelopes for the assistant")
            await driver.stop()
            return
        }
        #expect(list.envelopes == [first])
        #expect(try await store.keyEnvelopes(account: account.account, recipient: assistant.id, fromEpoch: 0)
            == [FrameCodec.serialize(first)])
        await driver.stop()
    }
}
