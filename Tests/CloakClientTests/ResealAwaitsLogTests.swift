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
@Suite("Re-sealed envelopes the server refused go again when the log moves (ADV-44)")
struct ResealAwaitsLogTests {
    @Test("ADV-44 re-sealed envelopes refused while the served log is short go again once a longer log is served")
    func refusedEnvelopesGoAgain() async throws {
        // A removes C: epoch 2 begins at the log's fourth entry. The server still held the first
        // three (restored from a backup) while another member gave the fourth back.
        let trace = try await removalThenRefusedReseal(seed: 141, servedBefore: 3, servedAfter: 4)
        #expect(trace.first.map(\.epoch).sorted() == [1, 2])
        // Dropped, B never got epoch 2's key again (large seed 9). The refusal looks at the log.
        #expect(trace.fetches == 1)
        #expect(trace.again.map(\.epoch).sorted() == [1, 2], "the same keys to the same recipient")
        #expect(Set(trace.again.map(\.recipient)) == Set(trace.first.map(\.recipient)))
    }

    @Test("ADV-44 a refused re-seal waits: the same served log sends nothing, a notice of another length is looked at")
    func sameLogSendsNothing() async throws {
        let trace = try await removalThenRefusedReseal(seed: 142, servedBefore: 4, servedAfter: 4)
        #expect(!trace.first.isEmpty)
        #expect(trace.again.isEmpty)
        // A notice of a shorter log (another restore, say) is looked at only because keys wait.
        #expect(trace.fetchesAfterNotice == 1)
    }

    /// Three devices; A removes C, then heals a rollback (``CloakClient/_resealRefused(servedBefore:servedAfter:)``).
    private func removalThenRefusedReseal(seed: UInt64, servedBefore: Int, servedAfter: Int) async throws
        -> (first: [Cloak_V1_KeyEnvelope], fetches: Int, again: [Cloak_V1_KeyEnvelope], fetchesAfterNotice: Int)
    {
        let devices = try await makeAccount(devices: 3, seed: seed, clock: ManualClock())
        _ = try await devices[0]._removeLocally(devices[2].deviceID)
        return try await devices[0]._resealRefused(servedBefore: servedBefore, servedAfter: servedAfter)
    }
}

extension CloakClient {
    /// A rollback healed while the server's log held `servedBefore` entries: the first
    /// PutKeyEnvelopes, refused INVALID_FIELD; the log fetches the refusal starts; the envelopes
    /// sent again once that fetch is answered with a log of `servedAfter` entries (this device's
    /// first ones) and every other request with Done; and the log fetches an AccountNotice of
    /// a log one entry shorter starts then.
    func _resealRefused(servedBefore: Int, servedAfter: Int) throws
        -> (first: [Cloak_V1_KeyEnvelope], fetches: Int, again: [Cloak_V1_KeyEnvelope], fetchesAfterNotice: Int)
    {
        let core = engine.core
        var machine = SyncMachine(configuration: core.configuration)
        machine.phase = .syncing(caughtUp: true)
        machine.healing.scanned = true
        machine.healing.serverLogLength = UInt64(servedBefore)
        let isFetch = { (frame: Cloak_V1_Frame) in if case .fetchDeviceLog? = frame.body { true } else { false } }
        guard let (id, put) = Self._putKeyEnvelopes(machine.resealForHealing(core: core, now: core.now())) else {
            return ([], 0, [], 0)
        }
        var error = Cloak_V1_Error()
        error.code = .invalidField
        error.message = "envelope epoch 2 does not exist"
        let refusedEffects = machine.handle(.frame(FrameCodec.encode(.error(error), requestID: id)), core: core)
        let refused = Self._frames(refusedEffects)
        // The next recipient's request went meanwhile; answered once the log is served.
        let next = Self._putKeyEnvelopes(refusedEffects)
        let wires = Array(core.log!.entries.map(\.wire).prefix(servedAfter))
        var entries = Cloak_V1_DeviceLogEntries()
        entries.entries = wires.map { Data($0) }
        entries.logLength = UInt64(wires.count)
        var effects = machine.handle(
            .frame(FrameCodec.encode(.deviceLogEntries(entries), requestID: refused.first(where: isFetch)?.requestID ?? 0)),
            core: core)
        if let (nextID, _) = next {
            effects += machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: nextID)), core: core)
        }
        var again: [Cloak_V1_KeyEnvelope] = []
        while let (sentID, sent) = Self._putKeyEnvelopes(effects) {
            again += sent.envelopes
            effects = machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: sentID)), core: core)
        }
        var notice = Cloak_V1_AccountNotice()
        notice.deviceLogLength = UInt64(servedAfter - 1)
        let noticed = Self._frames(machine.handle(.frame(FrameCodec.encode(.accountNotice(notice), requestID: 0)), core: core))
        return (put.envelopes, refused.filter(isFetch).count, again, noticed.filter(isFetch).count)
    }

    static func _putKeyEnvelopes(_ effects: [SyncEffect]) -> (UInt64, Cloak_V1_PutKeyEnvelopes)? {
        for frame in _frames(effects) {
            if case .putKeyEnvelopes(let put)? = frame.body { return (frame.requestID, put) }
        }
        return nil
    }
}
