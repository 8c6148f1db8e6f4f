import CloakCrypto
import CloakProtocol
import CloakSimulation
import CloakServer
import Foundation
import Testing

/// ADV-44: a server restored from an older backup. Subscribe anchors expose a cursor reused for
/// other content; restore pushes and restore appends let any member re-fill what it lost
/// (PROTOCOL.md §18–§20).
@Suite struct RestoreTests {
    private func results(_ frames: [Cloak_V1_Frame]) -> [Cloak_V1_PushResult] {
        frames.compactMap(\.pushAckBody).first?.results ?? []
    }

    private func cursors(_ frames: [Cloak_V1_Frame]) -> [UInt64] {
        frames.compactMap(\.deliverBody).flatMap { $0.items.map(\.cursor) }
    }

    /// A registered account with `count` change sets of device 0 in conversation 1 (cursors 1…count).
    private func seeded(_ server: SynchronousServer, seed: UInt64, devices: Int = 1, count: Int = 3)
        -> (account: TestAccount, client: CoreClient, pushed: [ChangeSet])
    {
        var account = TestAccount.make(seed: seed, devices: devices)
        let client = CoreClient(server)
        client.login(account, register: true)
        for (index, entry) in account.log.entries.dropFirst().enumerated() {
            client.send(Frames.appendDeviceLog(entry, id: 100 + UInt64(index)))
        }
        let pushed = (0..<count).map { _ in account.next(in: conversation(1)) }
        client.send(Frames.push(pushed, id: 3))
        return (account, client, pushed)
    }

    // MARK: Subscribe anchors

    @Test func adv44SubscribeBeyondTheHeadIsACursorMismatchAndTheConnectionStaysOpen() {
        let server = makeServer()
        let (_, client, _) = seeded(server, seed: 400)
        let refused = client.send(Frames.subscribe(after: 4, id: 7))
        #expect(refused.map(\.errorCode) == [.cursorMismatch])
        #expect(refused.first?.requestID == 7)
        #expect(client.closedWith == nil)
        // Without an anchor too: the cursor itself is beyond what the server holds.
        #expect(cursors(client.send(Frames.subscribe(after: 0, id: 8))) == [1, 2, 3])
    }

    @Test func adv44AnAnchorWithAnotherHashIsACursorMismatch() {
        let server = makeServer()
        let (_, client, pushed) = seeded(server, seed: 401)
        let wrong = client.send(Frames.subscribe(after: 2, anchor: pushed[0].hash.bytes, id: 7))
        #expect(wrong.map(\.errorCode) == [.cursorMismatch])
        let right = client.send(Frames.subscribe(after: 2, anchor: pushed[1].hash.bytes, id: 8))
        #expect(cursors(right) == [3])
        #expect(right.compactMap(\.deliverBody).last?.caughtUp == true)
    }

    @Test func anAnchorThatIsNotAHashIsAnInvalidField() {
        let server = makeServer()
        let (_, client, _) = seeded(server, seed: 402)
        #expect(client.send(Frames.subscribe(after: 1, anchor: [1, 2, 3], id: 7)).map(\.errorCode) == [.invalidField])
    }

    @Test func anAnchorIsCheckedAgainstTheStoredHashEvenAfterCompactionDroppedTheBytes() async throws {
        let store = InMemoryServerStore()
        let server = makeServer(store: store)
        let (seededAccount, client, pushed) = seeded(server, seed: 403)
        var account = seededAccount
        let covers = [ChainHead(device: account.devices[0].id, seq: 3, hash: pushed[2].hash)]
        client.send(Frames.putSnapshot(account.snapshot(in: conversation(1), covers: covers), id: 5))
        client.send(Frames.push([account.next(in: conversation(1))], id: 6))
        client.send(Frames.ackCursor(4, id: 0))
        let report = try await Compactor.run(store: store, nowMs: 0, logger: quietLogger)
        #expect(report.changeSetsDropped == 3)
        #expect(client.send(Frames.subscribe(after: 2, anchor: pushed[0].hash.bytes, id: 7)).map(\.errorCode) == [.cursorMismatch])
        let agreed = client.send(Frames.subscribe(after: 2, anchor: pushed[1].hash.bytes, id: 8))
        #expect(cursors(agreed) == [4])
    }

    @Test func adv44ACursorWithNoStoredChangeSetLeavesNothingToCompareAndProceeds() throws {
        // A store whose account skips cursor 2 (as one restored from pieces could).
        let account = TestAccount.make(seed: 404)
        var mutable = account
        let first = mutable.next(in: conversation(1))
        let second = mutable.next(in: conversation(1))
        let store = InMemoryServerStore()
        var batch = WriteBatch()
        batch.logEntries = [.init(account: account.account, index: 0, bytes: account.genesis.wire)]
        let chain = ChainKey(conversation: conversation(1), author: account.devices[0].id)
        batch.changeSets = [
            .init(account: account.account, cursor: 1, chain: chain, seq: 1, hash: first.hash, bytes: first.wire),
            .init(account: account.account, cursor: 3, chain: chain, seq: 2, hash: second.hash, bytes: second.wire),
        ]
        try store.commitNow(batch)
        let server = makeServer(store: store)
        let client = CoreClient(server)
        client.login(account)
        let frames = client.send(Frames.subscribe(after: 2, anchor: [UInt8](repeating: 7, count: 32), id: 7))
        #expect(frames.allSatisfy { $0.errorCode == nil })
        #expect(cursors(frames) == [3])
    }

    @Test func adv44ACursorReusedAfterARestoreIsACursorMismatch() throws {
        // The backup: cursors 1…2. The live server went on to 3 before it was restored.
        let store = InMemoryServerStore()
        let server = makeServer(store: store)
        let (seededAccount, writer, _) = seeded(server, seed: 405, devices: 2, count: 2)
        var account = seededAccount
        let backup = store.backup()
        let lost = account.next(in: conversation(1))
        #expect(results(writer.send(Frames.push([lost], id: 4))).map(\.cursor) == [3])
        let rebooted = makeServer(store: backup)
        // Another device writes on the restored server: cursor 3 now holds other content.
        let other = CoreClient(rebooted)
        other.login(account, device: 1)
        #expect(results(other.send(Frames.push([account.next(by: 1, in: conversation(2))], id: 5))).map(\.cursor) == [3])
        let device0 = CoreClient(rebooted)
        device0.login(account)
        #expect(device0.send(Frames.subscribe(after: 3, anchor: lost.hash.bytes, id: 6)).map(\.errorCode) == [.cursorMismatch])
    }

    // MARK: Restore pushes

    @Test func adv44ARestorePushCarriesOtherDevicesChangeSetsAndFansThemOut() {
        let server = makeServer()
        var account = TestAccount.make(seed: 410, devices: 2)
        let writer = CoreClient(server)
        writer.login(account, register: true)
        writer.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let listener = CoreClient(server)
        listener.login(account)
        _ = listener.send(Frames.subscribe(after: 0, id: 3))
        let byOther = [account.next(by: 1, in: conversation(1)), account.next(by: 1, in: conversation(1))]
        // Without restore, another author's change set is refused as before.
        #expect(results(writer.send(Frames.push([byOther[0]], id: 4))).map(\.error) == [.wrongAuthor])
        let restored = results(writer.send(Frames.restore(byOther, id: 5)))
        #expect(restored.map(\.error) == [.unspecified, .unspecified])
        #expect(restored.map(\.cursor) == [1, 2])
        let live = listener.receive().compactMap(\.deliverBody).flatMap(\.items)
        #expect(live.map { Array($0.changeSet) } == byOther.map(\.wire))
        // The same again: duplicates, nothing new fanned out.
        #expect(results(writer.send(Frames.restore(byOther, id: 6))).map(\.duplicate) == [true, true])
        #expect(listener.receive().isEmpty)
    }

    @Test func adv44ARestorePushAlwaysChecksSignaturesEvenWhenTheOperatorDoesNot() throws {
        let server = makeServer { $0.verifyChangeSetSignatures = false }
        var account = TestAccount.make(seed: 411, devices: 2)
        let writer = CoreClient(server)
        writer.login(account, register: true)
        writer.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let forged = badlySigned(account.next(by: 1, in: conversation(1)))
        let refused = results(writer.send(Frames.pushBytes([forged], id: 3, restore: true)))
        #expect(refused.map(\.error) == [.badSignature])
        #expect(refused.map(\.cursor) == [0])
    }

    @Test func adv44ARestorePushIsAdmittedByTheDeviceLogRule() {
        let server = makeServer()
        var account = TestAccount.make(seed: 412, devices: 2)
        let writer = CoreClient(server)
        writer.login(account, register: true)
        // The server's log lacks device 1's add entry: its change set names an unknown index.
        let ahead = account.next(by: 1, in: conversation(1))
        #expect(results(writer.send(Frames.restore([ahead], id: 3))).map(\.error) == [.invalidField])
        // A device the log never had, naming the server's own head.
        var stranger = TestAccount.make(seed: 412)
        stranger.devices = [TestDevice(seed: 99_413)]
        let notMember = stranger.make(by: 0, in: conversation(1), seq: 1, prev: .zero)
        #expect(results(writer.send(Frames.restore([notMember], id: 4))).map(\.error) == [.invalidField])
        // Once the log has the entry, the same change set is admitted.
        writer.send(Frames.appendDeviceLog(account.log.entries[1], id: 5))
        #expect(results(writer.send(Frames.restore([ahead], id: 6))).map(\.error) == [.unspecified])
    }

    @Test func adv44ARestoredChangeSetBeyondARemovalsCutoffIsRefused() {
        let server = makeServer()
        var account = TestAccount.make(seed: 414, devices: 3)
        let writer = CoreClient(server)
        writer.login(account, register: true)
        for index in 1..<3 { writer.send(Frames.appendDeviceLog(account.log.entries[index], id: UInt64(index + 1))) }
        let beforeRemoval = account.next(by: 2, in: conversation(1))
        let removal = account.removeDevice(2)
        #expect(writer.send(Frames.appendDeviceLog(removal, id: 9)).allSatisfy { $0.errorCode == nil })
        // The removal has no cut-off for conversation 1: nothing of device 2 there is admitted.
        #expect(results(writer.send(Frames.restore([beforeRemoval], id: 10))).map(\.error) == [.invalidField])
    }

    @Test func adv44RestoreItemsAreNotStaleDeviceLogAndStillGetChainChecks() {
        let server = makeServer()
        var account = TestAccount.make(seed: 415, devices: 3)
        let writer = CoreClient(server)
        writer.login(account, register: true)
        for index in 1..<3 { writer.send(Frames.appendDeviceLog(account.log.entries[index], id: UInt64(index + 1))) }
        // Device 1 wrote three change sets before device 2 was removed.
        let old = (0..<3).map { _ in account.next(by: 1, in: conversation(1)) }
        let removal = account.removeDevice(2)
        writer.send(Frames.appendDeviceLog(removal, id: 9))
        let device1 = CoreClient(server)
        device1.login(account, device: 1)
        #expect(results(device1.send(Frames.push([old[0]], id: 10))).map(\.error) == [.staleDeviceLog])
        // Restored by device 0: admitted (device 1 is still active), no STALE_DEVICE_LOG, but a
        // gap is still a gap and the rest chains on.
        #expect(results(writer.send(Frames.restore([old[1]], id: 11))).map(\.error) == [.gap])
        #expect(results(writer.send(Frames.restore(old, id: 12))).map(\.error) == [.unspecified, .unspecified, .unspecified])
        let fork = account.make(by: 1, in: conversation(1), seq: 2, prev: old[0].hash)
        #expect(results(writer.send(Frames.restore([fork], id: 13))).map(\.error) == [.fork])
    }

    // MARK: Restore appends

    @Test func adv44AnyMemberMayReAppendALogEntryWithRestoreAndTheChainRulesStillHold() {
        let server = makeServer()
        var account = TestAccount.make(seed: 420, devices: 2)
        let device0 = CoreClient(server)
        device0.login(account, register: true)
        device0.send(Frames.appendDeviceLog(account.log.entries[1], id: 2))
        let third = TestDevice(seed: 420_003)
        let added = account.addDevice(third)  // signed by device 0
        let device1 = CoreClient(server)
        device1.login(account, device: 1)
        #expect(device1.send(Frames.appendDeviceLog(added, id: 3)).map(\.errorCode) == [.wrongAuthor])
        // An entry signed by a stranger fails the chain rules even with restore.
        let forged = DeviceLogEntry.add(
            signingKey: TestDevice(seed: 420_004).signing.publicKey, agreementKey: third.agreement.publicKey,
            after: TestAccount.make(seed: 420, devices: 2).log, signer: TestDevice(seed: 420_099).signing,
            createdAtMs: 1_700_000_000_000)
        #expect(device1.send(Frames.appendDeviceLog(forged, id: 4, restore: true)).map(\.errorCode) == [.invalidDeviceLog])
        let done = device1.send(Frames.appendDeviceLog(added, id: 5, restore: true))
        #expect(done.map { if case .done = $0.body { true } else { false } } == [true])
        // Appending it again is a conflict (index is no longer the log's length).
        #expect(device1.send(Frames.appendDeviceLog(added, id: 6, restore: true)).map(\.errorCode) == [.deviceLogConflict])
    }
}
