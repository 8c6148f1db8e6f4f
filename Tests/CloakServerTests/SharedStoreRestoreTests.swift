import CloakCrypto
import CloakProtocol
import CloakServer
import Foundation
import Testing

/// ADV-44 with several server processes on one store: anchors, heads and restore pushes are
/// answered from what the store holds, not from one process's cache (which another process's
/// commits leave behind until their announcement arrives).
@Suite struct SharedStoreRestoreTests {
    @Test func anAnchorBeyondThisProcesssCacheIsCheckedAgainstTheStore() {
        let (first, second, _) = twoSharedProcesses()
        var account = TestAccount.make(seed: 460, devices: 2)
        let a = registerWithEveryDevice(account, on: first)
        let b = CoreClient(second)
        #expect(b.login(account, device: 1) != nil)  // the second process caches head 0
        let pushed = [account.next(in: conversation(1)), account.next(in: conversation(1))]
        #expect(a.send(Frames.push(pushed, id: 3)).compactMap(\.pushAckBody).first?.results.map(\.cursor) == [1, 2])
        // Device 1 learned cursor 2 elsewhere: the second process has not heard of it, but the
        // store has it, so this is no rollback.
        let caughtUp = b.send(Frames.subscribe(after: 2, anchor: pushed[1].hash.bytes, id: 4))
        #expect(caughtUp.allSatisfy { $0.errorCode == nil })
        #expect(caughtUp.compactMap(\.deliverBody).last?.caughtUp == true)
        // A cursor beyond what the store holds is a mismatch on either process.
        #expect(b.send(Frames.subscribe(after: 3, id: 5)).map(\.errorCode) == [.cursorMismatch])
        #expect(a.send(Frames.subscribe(after: 3, id: 5)).map(\.errorCode) == [.cursorMismatch])
    }

    @Test func headsAndRestorePushesSeeWhatTheOtherProcessCommitted() {
        let (first, second, _) = twoSharedProcesses()
        var account = TestAccount.make(seed: 461, devices: 2)
        let a = registerWithEveryDevice(account, on: first)
        let b = CoreClient(second)
        #expect(b.login(account, device: 1) != nil)
        let byZero = [account.next(in: conversation(1)), account.next(in: conversation(1))]
        _ = a.send(Frames.push(byZero, id: 3))
        // Heads come from the store: the second process lists the first one's commit.
        let heads = b.send(Frames.fetchHeads(id: 4)).first?.chainHeadsBody?.heads
        #expect(heads?.map(\.seq) == [2])
        #expect(heads?.first.map { Array($0.hash) } == byZero[1].hash.bytes)
        // A restore push through the second process of what the first stored: its stale cache
        // takes them for new, the commit's version check refuses that (INTERNAL, as for any
        // push), and the retry finds them stored: duplicates at the stored cursors, with
        // device 1's own next change set after them.
        let mine = account.next(by: 1, in: conversation(1))
        #expect(b.send(Frames.restore(byZero + [mine], id: 5)).map(\.errorCode) == [.`internal`])
        let results = b.send(Frames.restore(byZero + [mine], id: 6)).compactMap(\.pushAckBody).first?.results
        #expect(results?.map(\.duplicate) == [true, true, false])
        #expect(results?.map(\.cursor) == [1, 2, 3])
    }
}
