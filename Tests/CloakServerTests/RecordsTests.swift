import CloakCrypto
import CloakProtocol
import CloakServer
import Foundation
import Testing

/// Key envelopes, snapshots, pairing mailboxes, recovery blobs and recovery sessions.
@Suite struct RecordsTests {
    private func isDone(_ frames: [Cloak_V1_Frame]) -> Bool {
        frames.contains { if case .done = $0.body { true } else { false } }
    }

    @Test func keyEnvelopesAreCheckedStoredOnceAndFetchedByTheirRecipient() {
        let server = makeServer()
        let account = TestAccount.make(seed: 40, devices: 2)
        let owner = CoreClient(server)
        owner.login(account, register: true)
        owner.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let envelope = account.envelope(to: 1)
        #expect(isDone(owner.send(Frames.putKeyEnvelopes([envelope], id: 3))))
        // The server keeps the first copy per (recipient, epoch).
        #expect(isDone(owner.send(Frames.putKeyEnvelopes([account.envelope(to: 1)], id: 4))))
        // A forged envelope (ADV-10): its signature is not the sender's.
        var forged = account.envelope(to: 1).message
        forged.signature = Data(account.devices[1].signing.signature(for: [1, 2, 3]))
        var body = Cloak_V1_PutKeyEnvelopes()
        body.envelopes = [forged]
        #expect(owner.send(FrameCodec.encode(.putKeyEnvelopes(body), requestID: 5)).first?.errorCode == .badSignature)
        // Sent on behalf of another device.
        #expect(owner.send(Frames.putKeyEnvelopes([account.envelope(from: 1, to: 0)], id: 6)).first?.errorCode == .wrongAuthor)
        let recipient = CoreClient(server)
        recipient.login(account, device: 1)
        guard case .keyEnvelopes(let list) = recipient.send(Frames.fetchKeyEnvelopes(id: 7)).first?.body else {
            Issue.record("no KeyEnvelopes")
            return
        }
        #expect(list.envelopes == [envelope.message])
    }

    @Test func snapshotsFollowTheirLineage() {
        let server = makeServer()
        var account = TestAccount.make(seed: 41)
        let client = CoreClient(server)
        client.login(account, register: true)
        _ = account.next(in: conversation(1))
        let first = account.snapshot(in: conversation(1), covers: [account.head(of: 0, in: conversation(1))])
        #expect(isDone(client.send(Frames.putSnapshot(first, id: 3))))
        // Not built on the newest snapshot (ADV-12): a rollback attempt.
        let stale = account.snapshot(in: conversation(1), seq: 2, covers: [])
        #expect(client.send(Frames.putSnapshot(stale, id: 4)).first?.errorCode == .staleSnapshot)
        let second = account.snapshot(in: conversation(1), seq: 2, prev: first.hash, covers: [])
        #expect(isDone(client.send(Frames.putSnapshot(second, id: 5))))
        var fetch = Cloak_V1_FetchSnapshots()
        fetch.conversationIds = [Data(conversation(1).bytes)]
        guard case .snapshots(let list) = client.send(FrameCodec.encode(.fetchSnapshots(fetch), requestID: 6)).first?.body else {
            Issue.record("no SnapshotList")
            return
        }
        #expect(list.snapshots == [second.message])
    }

    @Test func mailboxesAreSingleUseAndExpire() {
        let server = makeServer()
        let account = TestAccount.make(seed: 42)
        let owner = CoreClient(server)
        owner.login(account, register: true)
        var put = Cloak_V1_MailboxPut()
        put.mailboxID = Data([UInt8](repeating: 3, count: 16))
        put.payload = Data([1, 2, 3])
        put.ttlSeconds = 60
        #expect(isDone(owner.send(FrameCodec.encode(.mailboxPut(put), requestID: 3), nowMs: 10_000)))
        var take = Cloak_V1_MailboxTake()
        take.mailboxID = put.mailboxID
        let newDevice = CoreClient(server)
        func taken(_ nowMs: UInt64) -> [UInt8]? {
            if case .mailboxContent(let content) = newDevice.send(FrameCodec.encode(.mailboxTake(take), requestID: 4), nowMs: nowMs).first?.body {
                return Array(content.payload)
            }
            return nil
        }
        #expect(taken(20_000) == [1, 2, 3])
        #expect(taken(20_001) == [])
        #expect(isDone(owner.send(FrameCodec.encode(.mailboxPut(put), requestID: 5), nowMs: 30_000)))
        #expect(taken(30_000 + 60_000) == [])
        put.payload = Data(count: 2 << 20)
        #expect(owner.send(FrameCodec.encode(.mailboxPut(put), requestID: 6)).first?.errorCode == .invalidField)
    }

    @Test func recoveryBlobsAndRecoverySessions() {
        let server = makeServer { $0.maxRecoveryAuthenticationsPerWindow = 2 }
        var account = TestAccount.make(seed: 43)
        let owner = CoreClient(server)
        owner.login(account, register: true)
        let recovery = TestDevice(seed: 4_343)
        let setRecovery = DeviceLogEntry.add(
            .setRecovery, signingKey: recovery.signing.publicKey, agreementKey: recovery.agreement.publicKey,
            after: account.log, signer: account.devices[0].signing, createdAtMs: 1)
        #expect(isDone(owner.send(Frames.appendDeviceLog(setRecovery, id: 2))))
        #expect(throws: Never.self) { try account.log.append(setRecovery) }
        var blob = Cloak_V1_RecoveryBlob()
        blob.accountID = Data(account.account.bytes)
        blob.recoveryKeyID = Data(recovery.id.bytes)
        blob.kdfParameters = Data([2])
        var put = Cloak_V1_PutRecovery()
        put.blob = blob
        #expect(isDone(owner.send(FrameCodec.encode(.putRecovery(put), requestID: 3))))
        put.blob.recoveryKeyID = Data(account.devices[0].id.bytes)
        #expect(owner.send(FrameCodec.encode(.putRecovery(put), requestID: 4)).first?.errorCode == .invalidField)

        var fetch = Cloak_V1_FetchRecovery()
        fetch.recoveryKeyID = Data(recovery.id.bytes)
        let stranger = CoreClient(server)
        guard case .recoveryBlob(let fetched) = stranger.send(FrameCodec.encode(.fetchRecovery(fetch), requestID: 5)).first?.body else {
            Issue.record("no RecoveryBlob")
            return
        }
        #expect(fetched == blob)
        fetch.accountID = Data(account.account.bytes)
        #expect(stranger.send(FrameCodec.encode(.fetchRecovery(fetch), requestID: 6)).first?.errorCode == .invalidField)

        // A recovery-key session may add a device and read envelopes, nothing else.
        let session = CoreClient(server)
        session.send(Frames.authenticate(account: account.account, device: recovery, nonce: session.nonce))
        var probe = account
        let newDevice = TestDevice(seed: 4_344)
        let add = DeviceLogEntry.add(
            signingKey: newDevice.signing.publicKey, agreementKey: newDevice.agreement.publicKey, after: account.log,
            signer: recovery.signing, createdAtMs: 2)
        #expect(isDone(session.send(Frames.appendDeviceLog(add, id: 7))))
        #expect(session.send(Frames.push([probe.next(in: conversation(1))], id: 8)).first?.errorCode == .unexpectedFrame)
        #expect(session.closedWith == nil)
        // Recovery authentications are rate-limited per account.
        var codes: [Cloak_V1_ErrorCode?] = []
        for _ in 0..<2 {
            let attempt = CoreClient(server)
            codes.append(attempt.send(Frames.authenticate(account: account.account, device: recovery, nonce: attempt.nonce)).first?.errorCode)
        }
        #expect(codes == [nil, .rateLimited])
    }
}
