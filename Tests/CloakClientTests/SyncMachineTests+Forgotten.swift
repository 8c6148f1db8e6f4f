import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

extension SyncMachineTests {
    /// ADV-44, PROTOCOL.md §30: a server restored from a backup older than the entry adding
    /// this device refuses it; the device gives the entries back before signing in. Those
    /// entries came with key envelopes the server lost too, but once signed in the server's log
    /// is whole again, so the AuthResult shows no rollback. Simulator seed 5368: the forgotten
    /// device never re-sealed its keys, and another member lacked epochs 2 and 3 for good.
    @Test("ADV-44 a device the restored server forgot gives its log entries back and then re-seals its keys")
    func forgottenDeviceResealsItsKeys() throws {
        let core = try core(withAccount: false)
        let random = DeterministicRandom(seed: 78)
        let other = Ed25519PrivateKey(using: random)
        let otherAgreement = X25519PrivateKey(using: random).publicKey
        var log = try DeviceLog(genesis: DeviceLogEntry.genesis(
            device: other, agreementKey: otherAgreement, accountNonce: random.bytes(16), createdAtMs: 1))
        try log.append(DeviceLogEntry.add(
            .addDevice, signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey,
            after: log, signer: other, createdAtMs: 2))
        try core.adopt(log: log, keys: [1: SymmetricKey.random(using: random)])
        var machine = SyncMachine(configuration: ClientConfiguration())

        // Refused, it fetches the log: the server lists one entry, not the one adding it.
        let frames = refusedThenReconnected(&machine, core)
        let fetch = try #require(frames.first { $0.body?.name == "fetch_device_log" })
        var entries = Cloak_V1_DeviceLogEntries()
        entries.logLength = 1
        let checked = machine.handle(.frame(FrameCodec.encode(.deviceLogEntries(entries), requestID: fetch.requestID)), core: core)
        let events = checked.flatMap { effect -> [SecurityEvent] in if case .surface(let output) = effect { output.events } else { [] } }
        #expect(events.contains { $0.kind == .serverRollback }, "\(events.map(\.kind))")
        let append = try #require(sent(checked).first { $0.body?.name == "append_device_log" }, "the entry adding it, given back")
        _ = machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: append.requestID)), core: core)

        // Signed in again, the log is whole: the keys are sealed again after the heads scan.
        // Its cursor forgotten, it starts from the snapshots (none), then catches up.
        let signedIn = caughtUp(&machine, core, headCursor: 0)
        let snapshots = try #require(signedIn.first { $0.body?.name == "fetch_snapshots" })
        let subscribe = try #require(
            sent(machine.handle(.frame(FrameCodec.encode(.snapshots(Cloak_V1_SnapshotList()), requestID: snapshots.requestID)), core: core))
                .first { $0.body?.name == "subscribe" })
        var deliver = Cloak_V1_Deliver()
        deliver.caughtUp = true
        let scan = try #require(
            sent(machine.handle(.frame(FrameCodec.encode(.deliver(deliver), requestID: subscribe.requestID)), core: core))
                .first { $0.body?.name == "fetch_heads" })
        let healed = headsReply([], to: scan, &machine, core)
        // One request per recipient: every member gets its keys again.
        var recipients: Set<DeviceID> = []
        var next = healed.frames.first { $0.body?.name == "put_key_envelopes" }
        while let put = next, case .putKeyEnvelopes(let list) = put.body {
            recipients.formUnion(try list.envelopes.map { try KeyEnvelope(message: $0).recipient })
            next = sent(machine.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: put.requestID)), core: core))
                .first { $0.body?.name == "put_key_envelopes" }
        }
        #expect(recipients == [DeviceID(signingKey: other.publicKey), core.me])
    }
}
