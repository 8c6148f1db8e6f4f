import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

@Suite("Membership: removal, key epochs, envelopes")
struct MembershipTests {
    /// Removes `device` on `remover` (core level): returns the new log and the envelopes.
    func remove(_ device: CloakClient, by remover: CloakClient) async throws -> ([[UInt8]], [KeyEnvelope]) {
        try await remover._removeLocally(device.deviceID)
    }

    @Test("ADV-09 ADV-31 a removal that arrives late is applied identically: every device ends equal")
    func lateRemoval() async throws {
        let devices = try await makeAccount(devices: 3, seed: 21)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let relay = Relay()
        let chat = try await a.createConversation(title: "shared")
        try await relay.collect(from: a)
        for device in [b, c] { _ = try await relay.deliverAll(to: device) }
        // C writes three change sets concurrently with its removal: A has seen only the first.
        var fromC: [[UInt8]] = []
        for n in 0..<3 {
            try await c.appendMessage(to: chat, role: .user, text: "c \(n)")
            fromC += try await c._drainOutbox()
        }
        _ = try await a._receive([(900, fromC[0])])
        _ = try await b._receive(fromC.enumerated().map { (UInt64(900 + $0.offset), $0.element) })
        #expect(await texts(b, chat).count == 3)
        let (log, envelopes) = try await remove(c, by: a)
        let output = try await b._receiveLog(log)
        _ = try await b._receiveEnvelopes(envelopes)
        #expect(output.events.map(\.kind) == [.beyondRemovalCutoff])
        // Late copies of C's later change sets reach A too: refused there as well.
        let lateAtA = try await a._receive(fromC.enumerated().map { (UInt64(950 + $0.offset), $0.element) })
        #expect(lateAtA.events.allSatisfy { $0.kind == .beyondRemovalCutoff })
        #expect(await a.stateHash(of: chat) == (await b.stateHash(of: chat)))
        #expect(await texts(b, chat).filter { $0.hasPrefix("c ") } == ["c 0"])
    }

    @Test("ADV-09 ADV-31 a late removal's rebuild keeps the snapshot a device joined from: it ends equal to the others")
    func lateRemovalAfterSnapshotBootstrap() async throws {
        var configuration = ClientConfiguration()
        configuration.snapshotEvery = 1
        let devices = try await makeAccount(devices: 3, seed: 23, configuration: configuration)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let relay = Relay()
        let chat = try await a.createConversation(title: "shared")
        try await a.appendMessage(to: chat, role: .user, text: "a 0")
        try await relay.collect(from: a)
        _ = try await relay.deliverAll(to: c)
        try await c.appendMessage(to: chat, role: .user, text: "c 0")
        var fromC = try await c._drainOutbox()
        _ = try await a._receive([(900, fromC[0])])
        // B joins the conversation from A's snapshot: it never stores the change sets it covers.
        let snapshot = try #require(try await a._takeSnapshot(of: chat))
        _ = try await b._loadSnapshots([snapshot])
        #expect(await texts(b, chat) == ["a 0", "c 0"])
        // C writes on concurrently with its removal; only B sees it before the removal.
        try await c.appendMessage(to: chat, role: .user, text: "c 1")
        fromC += try await c._drainOutbox()
        _ = try await b._receive([(901, fromC[1])])
        let (log, envelopes) = try await remove(c, by: a)
        let output = try await b._receiveLog(log)
        _ = try await b._receiveEnvelopes(envelopes)
        #expect(output.events.map(\.kind) == [.beyondRemovalCutoff])
        // The rebuild starts from the snapshot, not from nothing.
        #expect(await texts(b, chat) == ["a 0", "c 0"])
        #expect(await a.stateHash(of: chat) == (await b.stateHash(of: chat)))
        // C's chain on B ends at the cut-off: a late copy of what it covered is a duplicate.
        #expect(await b._chainSeq(chat, author: c.deviceID) == 1)
        let late = try await b._receive([(902, fromC[0])])
        #expect(late.events.isEmpty)
        #expect(await texts(b, chat) == ["a 0", "c 0"])
    }

    @Test("ADV-09 ADV-31 a late cut-off below the snapshot a device joined from: it fetches the conversation again, ends equal")
    func lateCutoffBelowJoinedSnapshot() async throws {
        var configuration = ClientConfiguration()
        configuration.snapshotEvery = 1
        let devices = try await makeAccount(devices: 4, seed: 27, configuration: configuration)
        let (a, b, c, d) = (devices[0], devices[1], devices[2], devices[3])
        let relay = Relay()
        let chat = try await a.createConversation(title: "shared")
        try await a.appendMessage(to: chat, role: .user, text: "a 0")
        try await relay.collect(from: a)
        _ = try await relay.deliverAll(to: c)
        _ = try await relay.deliverAll(to: d)
        var fromC: [[UInt8]] = []
        for n in 0..<2 {
            try await c.appendMessage(to: chat, role: .user, text: "c \(n)")
            fromC += try await c._drainOutbox()
        }
        _ = try await a._receive([(900, fromC[0])])
        _ = try await d._receive([(900, fromC[0]), (901, fromC[1])])
        // B joins from D's snapshot, which covers both of C's change sets. The server then
        // loses the second (a restore, seed 348), so A's removal of C cuts C off after the first.
        let snapshot = try #require(try await d._takeSnapshot(of: chat))
        _ = try await b._loadSnapshots([snapshot])
        #expect(await texts(b, chat) == ["a 0", "c 0", "c 1"])
        let (log, envelopes) = try await remove(c, by: a)
        let output = try await b._receiveLog(log)
        _ = try await b._receiveEnvelopes(envelopes)
        #expect(output.events.map(\.kind) == [.beyondRemovalCutoff])
        // No rebuild on top of that snapshot can drop "c 1": B fetches every chain from seq 1,
        // C's only to the cut-off.
        #expect(Set(output.gaps.filter { $0.conversation == chat }.map(\.author)) == [a.deviceID, c.deviceID])
        #expect(output.gaps.allSatisfy { $0.fromSeq == 1 })
        #expect(output.gaps.first { $0.author == c.deviceID }?.toSeq == 1)
        _ = try await b._receive(await relay.items + [(900, fromC[0])])
        #expect(await texts(b, chat) == ["a 0", "c 0"])
        #expect(await a.stateHash(of: chat) == (await b.stateHash(of: chat)))
        #expect(await b._chainSeq(chat, author: c.deviceID) == 1)
    }

    @Test("ADV-45 a device the server keeps an epoch key from hands out no incomplete keyring: no link, no recovery key")
    func withheldEpochKeyBlocksSealingToNewMembers() async throws {
        let devices = try await makeAccount(devices: 3, seed: 23)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let newcomer = try makeClient(seed: 24)
        let (signing, agreement) = await newcomer._publicKeys()
        let (log, envelopes) = try await remove(c, by: a)
        // B learns of epoch 2 but the server keeps its envelope back.
        _ = try await b._receiveLog(log)
        #expect(await b._epochs() == [1])
        await #expect(throws: ClientError.missingEpochKey(2)) { try await b._prepareAdd(signing, agreement) }
        await #expect(throws: ClientError.missingEpochKey(2)) { try await b._prepareRecoveryKey() }
        // Once the envelope arrives, the new device would receive every epoch.
        _ = try await b._receiveEnvelopes(envelopes)
        let sealed = try await b._prepareAdd(signing, agreement)
        #expect(sealed.map(\.epoch) == [1, 2])
    }

    @Test("ADV-08 envelopes queued for a device removed before they were sent are dropped, so the rest still go")
    func queuedEnvelopesToFormerMembersAreDropped() async throws {
        let devices = try await makeAccount(devices: 3, seed: 25)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        // A removes C, then B, without reaching the server in between: epoch 2's envelopes to
        // B wait in the queue behind B's removal.
        try await a._removeQueued(c.deviceID)
        try await a._removeQueued(b.deviceID)
        let before = try await a._queuedRecipients()
        #expect(before.filter { $0 == b.deviceID }.count == 1)
        let sent = try await a._envelopesToSendRecipients()
        #expect(!sent.contains(b.deviceID) && !sent.isEmpty)
        #expect(sent.allSatisfy { $0 == a.deviceID })
        // Dropped from the queue, not only from this batch.
        #expect(try await a._queuedRecipients() == sent)
    }

    @Test("ADV-08 a removed device fed every later change set decrypts none of them")
    func removedDeviceReadsNothing() async throws {
        let devices = try await makeAccount(devices: 3, seed: 22)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let relay = Relay()
        let chat = try await a.createConversation(title: "before")
        try await relay.collect(from: a)
        for device in [b, c] { _ = try await relay.deliverAll(to: device) }
        let (log, envelopes) = try await remove(c, by: a)
        _ = try await b._receiveLog(log)
        _ = try await b._receiveEnvelopes(envelopes)
        try await a.appendMessage(to: chat, role: .user, text: "after removal from a")
        try await b.appendMessage(to: chat, role: .user, text: "after removal from b")
        try await relay.collect(from: a)
        try await relay.collect(from: b)
        // The colluding server forwards everything, including the new log and every envelope.
        _ = try await c._receiveLog(log)
        _ = try await c._receiveEnvelopes(envelopes)
        _ = try await relay.deliverAll(to: c)
        #expect(await texts(c, chat).isEmpty)
        #expect(await c.conversation(chat) != nil, "C keeps what it had before (the conversation)")
        #expect(await !c._epochs().contains(2), "never the new epoch; its own keys are wiped once it sees its removal")
        #expect(try ChangeSet(wire: (await relay.items).last!.wire).header.epoch == 2)
        _ = try await relay.deliverAll(to: b)
        #expect(await b.conversations().first?.messageCount == 2)
    }

    @Test("ADV-40 a key envelope moved to another recipient is refused: missing key, never a wrong key")
    func swappedEnvelope() async throws {
        let devices = try await makeAccount(devices: 3, seed: 23)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let (log, envelopes) = try await remove(c, by: a)
        _ = try await b._receiveLog(log)
        let forB = envelopes.first { $0.recipient == b.deviceID }!
        let forA = envelopes.first { $0.recipient == a.deviceID }!
        // The server hands B the envelope sealed to A.
        let output = try await b._receiveEnvelopes([forA])
        #expect(output.events.map(\.kind) == [.keyEnvelopeRejected])
        #expect(await b._epochs() == [1])
        _ = try await b._receiveEnvelopes([forB])
        #expect(await b._epochs() == [1, 2])
    }

    @Test("the file secret store writes 0600 files in a 0700 directory and reads them back")
    func fileSecretStoreModes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UInt32.random(in: 0..<UInt32.max))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try FileSecretStore(directory: directory)
        let secret = SecretBytes(copying: [1, 2, 3, 4])
        try store.store(secret, named: "device-key")
        #expect(try store.load(named: "device-key") == secret)
        let fileMode = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("device-key.secret").path)[.posixPermissions] as? Int
        let dirMode = try FileManager.default.attributesOfItem(atPath: directory.path)[.posixPermissions] as? Int
        #expect(fileMode == 0o600)
        #expect(dirMode == 0o700)
        try store.delete(named: "device-key")
        #expect(try store.load(named: "device-key") == nil)
        #expect(throws: ClientError.self) { try store.store(secret, named: "../escape") }
    }

    @Test("ADV-15 the local store file holds no plaintext text, title, reaction or key")
    func localStoreCanaries() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UInt32.random(in: 0..<UInt32.max))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let client = try CloakClient.open(directory: directory, server: testServer, transport: NoTransport())
        try await client._createLocalAccount()
        let chat = try await client.createConversation(title: "cloak-canary-title")
        let message = try await client.appendMessage(to: chat, role: .user, text: "cloak-canary-message")
        try await client.react("cloak-canary-reaction", to: message, in: chat)
        try await client.setMetadata(.model, to: .text("cloak-canary-model"), in: chat)
        let reply = try await client.beginMessage(in: chat, parent: message)
        try await client.streamText("cloak-canary-stream", into: reply, in: chat)  // left unsealed: pending_ops
        let epochKey = await client._epochKeyBytes(1)
        try await client._storeDirectoryCheckpoint()
        var bytes: [UInt8] = []
        for suffix in ["", "-wal", "-shm"] {
            let url = directory.appendingPathComponent("cloak.sqlite" + suffix)
            if let data = FileManager.default.contents(atPath: url.path) { bytes += data }
        }
        #expect(bytes.count > 10_000)
        for canary in ["cloak-canary-title", "cloak-canary-message", "cloak-canary-reaction", "cloak-canary-model",
                       "cloak-canary-stream", "cloak-canary"] {
            #expect(!contains(bytes, Array(canary.utf8)), "\(canary) in the store")
            #expect(!contains(bytes, Array(canary.utf16).flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] }))
        }
        #expect(!contains(bytes, epochKey), "the epoch key in the store")
    }

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}

extension CloakClient {
    func _removeLocally(_ device: DeviceID) throws -> ([[UInt8]], [KeyEnvelope]) {
        let core = engine.core
        let (entry, key) = try core.prepareRemove(device)
        _ = try core.commitAppended(entry, newEpochKey: key)
        let queued = try core.queuedEnvelopes()
        try core.envelopesDelivered(queued.map(\.id))
        return (core.log!.entries.map(\.wire), try queued.map { try KeyEnvelope(message: $0.envelope) })
    }

    /// Removes `device` at the core level, leaving the new epoch's envelopes queued.
    func _removeQueued(_ device: DeviceID) throws {
        let (entry, key) = try engine.core.prepareRemove(device)
        _ = try engine.core.commitAppended(entry, newEpochKey: key)
    }

    func _queuedRecipients() throws -> [DeviceID] {
        try engine.core.queuedEnvelopes().map { try DeviceID(validating: $0.envelope.recipient, field: "recipient") }
    }

    func _envelopesToSendRecipients() throws -> [DeviceID] {
        try engine.core.envelopesToSend().map { try DeviceID(validating: $0.envelope.recipient, field: "recipient") }
    }

    /// Takes a snapshot of `conversation` now (core level), as if the server stored it.
    func _takeSnapshot(of conversation: ConversationID) throws -> Snapshot? {
        let core = engine.core
        core.documents.sinceSnapshot = core.documents.sinceSnapshot.filter { $0.key == conversation }
        let snapshot = try core.snapshotIfDue()
        try core.snapshotStored()
        return snapshot
    }

    func _chainSeq(_ conversation: ConversationID, author: DeviceID) -> UInt64 {
        engine.chainPosition(conversation, author: author).seq
    }

    func _loadSnapshots(_ snapshots: [Snapshot]) throws -> CoreOutput {
        let output = try engine.core.loadSnapshots(snapshots)
        engine.surface(output)
        return output
    }

    func _epochs() -> [UInt64] { engine.core.membership.keyring.epochKeys.keys.sorted() }

    /// Signs an add entry for a new device and seals the keyring to it (linking, core level).
    func _prepareAdd(_ signing: Ed25519PublicKey, _ agreement: X25519PublicKey) throws -> [KeyEnvelope] {
        let core = engine.core
        let entry = try core.prepareAddDevice(signingKey: signing, agreementKey: agreement)
        _ = try core.commitAppended(entry)
        return try core.envelopesForAllEpochs(to: DeviceID(signingKey: signing), agreement)
    }

    /// Prepares a recovery key's entry (setting up recovery, core level).
    func _prepareRecoveryKey() throws {
        _ = try engine.core.prepareSetRecovery(RecoveryKeys(root: SymmetricKey.random()))
    }

    func _epochKeyBytes(_ epoch: UInt64) -> [UInt8] {
        engine.core.membership.keyring.epochKeys[epoch]?.secret.copyBytes() ?? []
    }
}
