import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// Re-sealed envelopes after a rollback wait for the served device log (PROTOCOL.md §30): the
/// server takes a PutKeyEnvelopes whole or not at all, and refuses one naming an epoch its log
/// has not begun — while the lost entries are still on their way back, from this device or
/// another.
@Suite("Re-sealed envelopes wait for the restored log (ADV-44)")
struct ResealAwaitsLogTests {
    @Test("ADV-44 re-sealed envelopes wait while the served log is shorter, and go once a notice's log is served")
    func envelopesWaitForTheLog() async throws {
        let clock = ManualClock()
        let devices = try await makeAccount(devices: 3, seed: 141, clock: clock)
        // A removes C: epoch 2 begins at the log's fourth entry. The server was restored to the
        // first three; another member is giving the rest back.
        _ = try await devices[0]._removeLocally(devices[2].deviceID)
        let trace = try await devices[0]._resealWhileLogIsShort(served: 3)
        // Sent at once, the request for B named epoch 2 and was refused whole: B never got the
        // key (large seed 9).
        #expect(trace.atOnce == 0)
        #expect(trace.fetches == 1, "a notice of another length is looked at, though no longer than this log")
        #expect(trace.afterLog == 2, "one request per recipient: B and A itself")
        #expect(trace.epochsAfterLog == [1, 2])
    }

    @Test("ADV-44 with the whole log served, re-sealed envelopes go at once")
    func fullLogSendsAtOnce() async throws {
        let clock = ManualClock()
        let devices = try await makeAccount(devices: 3, seed: 142, clock: clock)
        _ = try await devices[0]._removeLocally(devices[2].deviceID)
        let served = await devices[0]._logWires().count
        let trace = try await devices[0]._resealWhileLogIsShort(served: served)
        #expect(trace.atOnce == 1, "the first request; the next goes when it is answered")
    }
}

extension CloakClient {
    /// A rollback healed while the server's log holds `served` of this device's entries: the
    /// PutKeyEnvelopes sent at once; the log fetches that an AccountNotice of the full length
    /// starts; and, once the full log is served, the requests sent one after another (each
    /// answered Done) with the epochs they carry.
    func _resealWhileLogIsShort(served: Int) throws -> (atOnce: Int, fetches: Int, afterLog: Int, epochsAfterLog: Set<UInt64>) {
        let core = engine.core
        var machine = SyncMachine(configuration: core.configuration)
        machine.phase = .syncing(caughtUp: true)
        machine.healing.scanned = true
        machine.healing.serverLogLength = UInt64(served)
        let first = machine.resealForHealing(core: core, now: core.now())
        let wires = core.log!.entries.map(\.wire)
        var notice = Cloak_V1_AccountNotice()
        notice.deviceLogLength = UInt64(wires.count)
        let noticed = Self._frames(machine.handle(.frame(FrameCodec.encode(.accountNotice(notice), requestID: 0)), core: core))
        let fetches = noticed.filter { if case .fetchDeviceLog? = $0.body { true } else { false } }
        var entries = Cloak_V1_DeviceLogEntries()
        entries.entries = wires.map { Data($0) }
        entries.logLength = UInt64(wires.count)
        var effects = machine.handle(
            .frame(FrameCodec.encode(.deviceLogEntries(entries), requestID: fetches.first?.requestID ?? 0)), core: core)
        var requests = 0
        var epochs: Set<UInt64> = []
        while let (id, put) = Self._putKeyEnvelopes(effects) {
            requests += 1
            epochs.formUnion(put.envelopes.map(\.epoch))
            effects = machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: id)), core: core)
        }
        let atOnce = Self._frames(first).filter { if case .putKeyEnvelopes? = $0.body { true } else { false } }.count
        return (atOnce, fetches.count, requests, epochs)
    }

    static func _putKeyEnvelopes(_ effects: [SyncEffect]) -> (UInt64, Cloak_V1_PutKeyEnvelopes)? {
        for frame in _frames(effects) {
            if case .putKeyEnvelopes(let put)? = frame.body { return (frame.requestID, put) }
        }
        return nil
    }
}
