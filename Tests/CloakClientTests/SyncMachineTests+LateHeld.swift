import CloakCRDT
import CloakCrypto
import CloakProtocol
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

extension SyncMachineTests {
    /// ADV-44, seed 776: a device holds change sets it cannot admit yet (their device-log entry
    /// or epoch key has not come) when its heads scan runs, so the scan cannot offer them back
    /// to a restored server that lost them. Once they are accepted, the heads are compared
    /// again and the server gets them back in a restore push; without that, this device keeps
    /// them and every other member never learns they exist, and the members differ for good.
    @Test("ADV-44 change sets held past the heads scan are offered back to a restored server once accepted")
    func heldChangeSetsAcceptedAfterTheScanAreRestored() async throws {
        let devices = try await makeAccount(devices: 2, seed: 776)
        let (a, b) = (devices[0], devices[1])
        // A adds a device and writes under the longer log; B has the shorter one, so it holds them.
        let newcomer = try makeClient(seed: 77_601)
        let (signing, agreement) = await newcomer._publicKeys()
        _ = try await a._addDevice(signingKey: signing, agreementKey: agreement)
        let chat = try await a.createConversation(title: "cloak-canary-late-held")
        try await a.appendMessage(to: chat, role: .user, text: "cloak-canary-held")
        let written = try await a._drainOutbox()
        let log = await a._logWires()
        let frames = try await b.withEngine { engine in
            try Self.scanThenAdmitLate(written, log: log, core: engine.core)
        }
        #expect(frames.afterScan.isEmpty, "nothing to re-upload while they are held")
        let scan = try #require(frames.afterLog.first { $0.body?.name == "fetch_heads" }, "the heads are compared again")
        #expect(scan.requestID != 0)
        guard case .push(let push)? = frames.afterHeads.first(where: { $0.body?.name == "push" })?.body else {
            Issue.record("no restore push")
            return
        }
        #expect(push.restore)
        #expect(Set(push.changeSets.map { Array($0) }) == Set(written))
    }

    /// Drives a fresh sync machine over `core`: catch-up delivers `written` (held for a log
    /// entry), the restored server's heads lack them, then the log comes and the heads scan is
    /// answered the same way again. The frames sent after each step.
    private static func scanThenAdmitLate(_ written: [[UInt8]], log: [[UInt8]], core: ClientCore) throws
        -> (afterScan: [Cloak_V1_Frame], afterLog: [Cloak_V1_Frame], afterHeads: [Cloak_V1_Frame])
    {
        var machine = SyncMachine(configuration: ClientConfiguration())
        _ = machine.handle(.start, core: core)
        _ = machine.handle(.connected, core: core)
        let auth = frames(machine.handle(.frame(hello()), core: core))
        var result = Cloak_V1_AuthResult()
        result.deviceLogLength = UInt64(core.log?.entries.count ?? 0)
        let sent = frames(machine.handle(.frame(FrameCodec.encode(.authResult(result), requestID: auth[0].requestID)), core: core))
        var deliver = Cloak_V1_Deliver()
        deliver.caughtUp = true
        deliver.items = written.enumerated().map { index, wire in
            var item = Cloak_V1_StoredChangeSet()
            item.cursor = UInt64(index + 1)
            item.changeSet = Data(wire)
            return item
        }
        // A device that never synced asks for snapshots first; there are none.
        let snapshots = try #require(sent.first { $0.body?.name == "fetch_snapshots" })
        let subscribed = frames(machine.handle(
            .frame(FrameCodec.encode(.snapshots(Cloak_V1_SnapshotList()), requestID: snapshots.requestID)), core: core))
        let subscribe = try #require(subscribed.first { $0.body?.name == "subscribe" })
        let caughtUp = frames(machine.handle(.frame(FrameCodec.encode(.deliver(deliver), requestID: subscribe.requestID)), core: core))
        #expect(core.ledger.held.count == written.count)
        let heads = try #require(caughtUp.first { $0.body?.name == "fetch_heads" })
        let fetchLog = try #require(sent.first { $0.body?.name == "fetch_device_log" })
        let afterScan = frames(machine.handle(.frame(emptyHeads(heads.requestID)), core: core)).filter { $0.body?.name == "push" }
        var entries = Cloak_V1_DeviceLogEntries()
        entries.entries = log.map { Data($0) }
        entries.logLength = UInt64(log.count)
        let afterLog = frames(machine.handle(.frame(FrameCodec.encode(.deviceLogEntries(entries), requestID: fetchLog.requestID)), core: core))
        #expect(core.ledger.held.count == 0, "accepted once the log came")
        guard let again = afterLog.first(where: { $0.body?.name == "fetch_heads" }) else { return (afterScan, afterLog, []) }
        // Re-sealed envelopes go first (the keys the change sets need); each is acknowledged.
        var afterHeads = frames(machine.handle(.frame(emptyHeads(again.requestID)), core: core))
        while let envelopes = afterHeads.first(where: { $0.body?.name == "put_key_envelopes" }) {
            afterHeads = frames(machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: envelopes.requestID)), core: core))
        }
        return (afterScan, afterLog, afterHeads)
    }

    private static func emptyHeads(_ requestID: UInt64) -> [UInt8] {
        var page = Cloak_V1_ChainHeads()
        page.complete = true
        return FrameCodec.encode(.chainHeads(page), requestID: requestID)
    }

    private static func hello() -> [UInt8] {
        var hello = Cloak_V1_ServerHello()
        hello.versions = [1]
        hello.nonce = Data(repeating: 9, count: 32)
        return FrameCodec.encode(.serverHello(hello))
    }

    private static func frames(_ effects: [SyncEffect]) -> [Cloak_V1_Frame] {
        effects.compactMap { effect in
            if case .send(let bytes) = effect { return try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 22) }
            return nil
        }
    }
}
