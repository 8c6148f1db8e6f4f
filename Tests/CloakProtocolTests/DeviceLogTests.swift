@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

/// Every chain rule of the device log (PROTOCOL.md §"Device log"), each positive and negative,
/// including what a malicious server would try: injecting an add (ADV-10), replaying old
/// entries (ADV-30), and serving a stale or forked log (ADV-12).
@Suite("Device log")
struct DeviceLogTests {
    /// Re-signs `entry` after `edit`, as a holder of `signer` could (a forger with a real key).
    static func forge(
        _ entry: DeviceLogEntry, signer: Ed25519PrivateKey, _ edit: (inout Cloak_V1_DeviceLogEntry) -> Void
    ) throws -> DeviceLogEntry {
        var m = entry.message
        edit(&m)
        m.signature = Data([UInt8](repeating: 0, count: 64))
        let unsigned = try DeviceLogEntry(message: m)
        m.signature = Data(signer.signature(for: unsigned.canonicalBytes))
        return try DeviceLogEntry(message: m)
    }

    static func invalid(_ body: () throws -> Void) -> Bool {
        do { try body() } catch let error as ProtocolError {
            if case .invalidDeviceLog = error { return true }
            return false
        } catch { return false }
        return false
    }

    @Test("genesis: self-signed entry 0 at epoch 1 creates the account; AccountID is its hash")
    func genesis() throws {
        let f = try AccountFixture()
        let genesis = f.log.entries[0]
        #expect(f.log.account.bytes == genesis.hash.bytes)
        #expect(f.log.isActive(f.a.id, atIndex: 0) && !f.log.isActive(f.b.id, atIndex: 0))
        #expect(f.log.epoch(atIndex: 0) == 1)
        // Each broken genesis rule, re-signed by the device so only the rule fails.
        let broken: [(inout Cloak_V1_DeviceLogEntry) -> Void] = [
            { $0.index = 1 }, { $0.epoch = 2 }, { $0.prevHash = Data([UInt8](repeating: 1, count: 32)) },
        ]
        for edit in broken {
            let entry = try Self.forge(genesis, signer: f.a.signing, edit)
            #expect(Self.invalid { _ = try DeviceLog(genesis: entry) })
        }
        // Signed by B but creating A: a genesis must be signed by the device it creates.
        let other = try Self.forge(genesis, signer: f.b.signing) { $0.signer = Data(f.b.id.bytes) }
        #expect(Self.invalid { _ = try DeviceLog(genesis: other) })
        let badSignature = try DeviceLogEntry(
            wire: FrameCodec.serialize(
                { () -> Cloak_V1_DeviceLogEntry in
                    var m = genesis.message
                    m.signature = Data(flip(genesis.signature, 5))
                    return m
                }()))
        #expect(throws: ProtocolError.badSignature("genesis entry")) { try DeviceLog(genesis: badSignature) }
        #expect(Self.invalid { _ = try DeviceLog(genesis: f.log.entries[1]) })
        #expect(Self.invalid { _ = try DeviceLog(verifying: []) })
    }

    @Test("add: signed by an active device, next index, previous head, same epoch")
    func add() throws {
        var f = try AccountFixture()
        let d = TestDevice(seed: 104)
        let entry = f.addEntry(d, by: f.b)
        let before = f.log
        try f.log.append(entry)
        #expect(f.log.isActive(d.id, atIndex: f.log.headIndex) && !f.log.isActive(d.id, atIndex: before.headIndex))
        #expect(f.log.currentEpoch == 1)
        // Index, previous hash and epoch must all follow the head.
        for edit: (inout Cloak_V1_DeviceLogEntry) -> Void in [
            { $0.index += 1 }, { $0.prevHash = Data(before.entries[0].hash.bytes) }, { $0.epoch = 2 },
        ] {
            var log = before
            let forged = try Self.forge(entry, signer: f.b.signing, edit)
            #expect(Self.invalid { try log.append(forged) })
        }
    }

    @Test("ADV-10 a server-injected add (its own key, or a member's id with a forged signature) is refused")
    func serverInjectedAdd() throws {
        let f = try AccountFixture()
        let server = TestDevice(seed: 666)
        var log = f.log
        // Signed by the server's own key, which the log does not list.
        let selfSigned = DeviceLogEntry.add(
            signingKey: server.signing.publicKey, agreementKey: server.agreement.publicKey, after: log,
            signer: server.signing, createdAtMs: AccountFixture.time)
        #expect(Self.invalid { try log.append(selfSigned) })
        // Claiming to be signed by A, but A's key did not sign it.
        let claimed = try Self.forge(selfSigned, signer: server.signing) { $0.signer = Data(f.a.id.bytes) }
        #expect(throws: ProtocolError.badSignature("device log entry 3")) { try log.append(claimed) }
        #expect(log.entries.count == f.log.entries.count)
        #expect(!log.activeDevices.contains(server.id))
        // Through `extended(with:)` the same entry is refused and the pinned log is unchanged.
        #expect(
            throws: DeviceLogConsistencyError.invalid(.invalidDeviceLog("signer is not active at the previous head"))
        ) {
            try f.log.extended(with: f.log.entries + [selfSigned])
        }
    }

    @Test("ADV-30 replayed entries: an old entry again, a second genesis, re-adding a removed device")
    func replays() throws {
        var f = try AccountFixture()
        #expect(Self.invalid { try f.log.append(f.log.entries[1]) })
        #expect(Self.invalid { try f.log.append(f.log.entries[0]) })
        let addC = f.log.entries[2]
        try f.log.append(f.removeEntry(f.c, by: f.a))
        // A fresh add of C, correctly chained and signed: C was a member once, so never again.
        let readd = f.addEntry(f.c, by: f.a)
        #expect(Self.invalid { try f.log.append(readd) })
        #expect(Self.invalid { try f.log.append(addC) })
        #expect(!f.log.isActive(f.c.id, atIndex: f.log.headIndex))
    }

    @Test("remove: by an active device, of another active device, epoch + 1, never the last device")
    func remove() throws {
        var f = try AccountFixture()
        let removal = f.removeEntry(f.c, by: f.b)
        let before = f.log
        #expect(before.newestRemovalIndex == nil)
        try f.log.append(removal)
        #expect(f.log.currentEpoch == 2 && f.log.removal(of: f.c.id) == removal)
        #expect(f.log.newestRemovalIndex == removal.index)
        #expect(f.log.isActive(f.c.id, atIndex: before.headIndex) && !f.log.isActive(f.c.id, atIndex: f.log.headIndex))
        // The removed device can sign nothing afterwards.
        let byRemoved = f.removeEntry(f.b, by: f.c)
        #expect(
            Self.invalid {
                var log = f.log; try log.append(byRemoved)
            })
        // Epoch must advance by exactly one.
        for epoch: UInt64 in [1, 3] {
            var log = before
            let forged = try Self.forge(removal, signer: f.b.signing) { $0.epoch = epoch }
            #expect(Self.invalid { try log.append(forged) })
        }
        // Removing a device that is not active (C again), and the last active device.
        #expect(
            Self.invalid {
                var log = f.log; try log.append(f.removeEntry(f.c, by: f.a))
            })
        let second = f.removeEntry(f.b, by: f.a)
        try f.log.append(second)
        #expect(f.log.newestRemovalIndex == second.index)
        // A log rebuilt from its entries arrives at the same newest removal.
        #expect(try DeviceLog(verifying: f.log.entries).newestRemovalIndex == second.index)
        #expect(
            Self.invalid {
                var log = f.log; try log.append(f.removeEntry(f.a, by: f.a))
            })
        #expect(f.log.activeDevices == [f.a.id])
    }

    @Test("set_recovery: a device sets it; the recovery key may only add devices; a new one replaces the old")
    func recoveryKey() throws {
        var f = try AccountFixture()
        let recovery = RecoverySecret.random(using: DeterministicRandom(seed: 44)).keys
        try f.log.append(
            DeviceLogEntry.add(
                .setRecovery, signingKey: recovery.signing.publicKey, agreementKey: recovery.agreement.publicKey,
                after: f.log, signer: f.a.signing, createdAtMs: AccountFixture.time))
        #expect(f.log.recoveryKey?.id == recovery.id && !f.log.isActive(recovery.id, atIndex: f.log.headIndex))
        // The recovery key cannot remove devices or replace itself.
        let removeByRecovery = DeviceLogEntry.remove(
            f.b.id, cutoffs: [], after: f.log, signer: recovery.signing, createdAtMs: AccountFixture.time)
        #expect(
            Self.invalid {
                var log = f.log; try log.append(removeByRecovery)
            })
        let other = RecoverySecret.random(using: DeterministicRandom(seed: 45)).keys
        let replaceByRecovery = DeviceLogEntry.add(
            .setRecovery, signingKey: other.signing.publicKey, agreementKey: other.agreement.publicKey, after: f.log,
            signer: recovery.signing, createdAtMs: AccountFixture.time)
        #expect(
            Self.invalid {
                var log = f.log; try log.append(replaceByRecovery)
            })
        // It can add a device (the recovering one).
        let newDevice = TestDevice(seed: 105)
        var recovered = f.log
        try recovered.append(
            DeviceLogEntry.add(
                signingKey: newDevice.signing.publicKey, agreementKey: newDevice.agreement.publicKey, after: recovered,
                signer: recovery.signing, createdAtMs: AccountFixture.time))
        #expect(recovered.isActive(newDevice.id, atIndex: recovered.headIndex))
        // A device replaces the recovery key; the old one can sign nothing more.
        try f.log.append(
            DeviceLogEntry.add(
                .setRecovery, signingKey: other.signing.publicKey, agreementKey: other.agreement.publicKey,
                after: f.log,
                signer: f.b.signing, createdAtMs: AccountFixture.time))
        #expect(f.log.recoveryKey?.id == other.id)
        let addByOld = DeviceLogEntry.add(
            signingKey: newDevice.signing.publicKey, agreementKey: newDevice.agreement.publicKey, after: f.log,
            signer: recovery.signing, createdAtMs: AccountFixture.time)
        #expect(
            Self.invalid {
                var log = f.log; try log.append(addByOld)
            })
    }

    @Test("ADV-12 extended(with:): the same or a longer log is accepted; shorter is rollback; different (even shorter) is fork")
    func consistency() throws {
        var f = try AccountFixture()
        let pinned = f.log
        #expect(try pinned.extended(with: pinned.entries).head == pinned.head)
        try f.log.append(f.addEntry(TestDevice(seed: 106), by: f.a))
        #expect(try pinned.extended(with: f.log.entries).head == f.log.head)
        #expect(throws: DeviceLogConsistencyError.rollback(pinnedLength: 4, servedLength: 3)) {
            try f.log.extended(with: pinned.entries)
        }
        // A forked history: same length, a different entry at index 3.
        var fork = pinned
        let other = TestDevice(seed: 107)
        try fork.append(
            DeviceLogEntry.add(
                signingKey: other.signing.publicKey, agreementKey: other.agreement.publicKey, after: pinned,
                signer: f.b.signing, createdAtMs: AccountFixture.time))
        #expect(throws: DeviceLogConsistencyError.fork(atIndex: 3)) { try f.log.extended(with: fork.entries) }
        // ADV-44: a server restored from a backup, where a different entry was appended since,
        // serves a log both shorter and different: a fork (giving entries back cannot mend it).
        var longer = f.log
        try longer.append(f.addEntry(TestDevice(seed: 108), by: f.a))
        #expect(throws: DeviceLogConsistencyError.fork(atIndex: 3)) { try longer.extended(with: fork.entries) }
        #expect(throws: DeviceLogConsistencyError.fork(atIndex: 0)) {
            try DeviceLog(genesis: pinned.entries[0]).extended(with: try AccountFixture.otherAccount().entries)
        }
    }
}

extension AccountFixture {
    /// A different account (another genesis nonce).
    static func otherAccount() throws -> DeviceLog {
        let device = TestDevice(seed: 101)
        return try DeviceLog(
            genesis: .genesis(
                device: device.signing, agreementKey: device.agreement.publicKey,
                accountNonce: [UInt8](repeating: 8, count: 16), createdAtMs: time))
    }
}
