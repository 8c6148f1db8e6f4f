@_spi(Simulation) import CloakClient
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
@_spi(Randomness) import CloakTesting

/// What the hostile server did to one frame, and which alarms the receiving device must raise
/// when it processes it (empty: nothing to detect, but the rendered state must not change).
struct HostileMark {
    /// A damaged frame as one device received it: its digest alone is not enough, since an
    /// honest frame to another device can have the same bytes (an AuthResult naming the same
    /// cursor and log length under the same request id; simulator seed 32 of the debug sample).
    struct Key: Hashable {
        let device: Int
        let digest: [UInt8]
    }

    let policy: String
    let expected: Set<SecurityEvent.Kind>
}

extension SimWorld {
    /// Alarms a change set the server damaged or forged must raise (ADV-02, ADV-03, ADV-06).
    static let forgeryKinds: Set<SecurityEvent.Kind> = [
        .badSignature, .malformedRecord, .decryptionFailed, .unknownAuthor, .wrongAccount,
    ]

    /// Turns the server hostile for a window of the workload: every frame it delivers may be
    /// tampered with, truncated, forged, replayed or reordered; a device may be told the
    /// server's head is lower than what it saw, be served a shortened device log or one with an
    /// injected device, or have a change set withheld from it for good (docs/threats.md "What the
    /// simulator runs"). Each device that processes a damaged item must raise its alarm.
    func scheduleHostility(window: Int) {
        let start = UInt64(rng.below(max(1, window / 2)))
        let length = UInt64(rng.within(2_000...max(2_001, window / 2)))
        schedule(after: start) { world in
            world.fault("hostile on")
            world.hostileOn = true
            world.intercept = { world, device, direction, bytes in world.hostile(device, direction, bytes) }
        }
        schedule(after: start + length) { world in
            world.fault("hostile off")
            world.hostileOn = false
        }
    }

    /// One frame through the hostile server (withholdings outlast its window).
    func hostile(_ device: Int, _ direction: Direction, _ bytes: [UInt8]) -> [[UInt8]] {
        if hostileOn { logMetadata(device, direction, bytes) }
        guard direction == .toClient, hostileOn || !withholdings.isEmpty || !keyWithholdings.isEmpty,
            var frame = try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 24)
        else { return [bytes] }
        var mark: HostileMark?
        switch frame.body {
        case .deliver(var deliver):
            if hostileOn { rememberDelivered(deliver.items) }
            let withheld = withhold(device, &deliver)
            if hostileOn, !deliver.items.isEmpty, rng.chance(0.3) { mark = damage(&deliver, for: device) }
            guard withheld || mark != nil else { return [bytes] }
            frame.body = .deliver(deliver)
        case .authResult(var result) where hostileOn && rng.chance(0.3):
            guard let rolled = rollBack(device, &result) else { return [bytes] }
            mark = rolled
            frame.body = .authResult(result)
        case .deviceLogEntries(var log) where hostileOn && rng.chance(0.3):
            guard let tampered = tamperLog(device, &log) else { return [bytes] }
            mark = tampered
            frame.body = .deviceLogEntries(log)
        case .keyEnvelopes(var list)
        where keyWithholdings[device] != nil || (hostileOn && devices[device].status == .member && rng.chance(0.3)):
            // Key envelopes kept from one device until it reports change sets it cannot read.
            if keyWithholdings[device] == nil {
                keyWithholdings[device] = devices[device].events.count
                fault("withhold keys")
            }
            guard !list.envelopes.isEmpty else { return [bytes] }
            list.envelopes = []
            frame.body = .keyEnvelopes(list)
        default:
            return [bytes]
        }
        let damaged = FrameCodec.encode(frame)
        if let mark {
            fault(mark.policy)
            hostileMarks[HostileMark.Key(device: device, digest: BLAKE2b.hash(damaged))] = mark
        }
        return [damaged]
    }

    /// The metadata logger: the hostile server writes down every frame it handles, decoded
    /// field by field (what an operator's debug log would hold). Nothing in it may be plaintext.
    private func logMetadata(_ device: Int, _ direction: Direction, _ bytes: [UInt8]) {
        guard let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 24) else { return }
        let line = "\(direction == .toClient ? "to" : "from") \(devices[device].name) \(frame.requestID) \(String(describing: frame.body))"
        notes.faults["metadata logged", default: 0] += 1
        if let found = CanaryPrefixScanner.shared.find(in: [Array(line.utf8)]) {
            notes.fail("confidentiality", "the hostile server's metadata log holds a canary (\(found))")
        }
    }

    /// Damages one delivery: tamper, truncate, forge, replay, reorder or duplicate.
    private func damage(_ deliver: inout Cloak_V1_Deliver, for device: Int) -> HostileMark? {
        let index = rng.below(deliver.items.count)
        var item = deliver.items[index]
        let policy: String
        switch rng.below(6) {
        case 0:
            policy = "tamper"
            var wire = Array(item.changeSet)
            // Not in the signature (the last field, 66 bytes with its tag): a change set's hash
            // leaves the signature out, so a device that holds it rightly ignores such a copy
            // as a duplicate.
            guard wire.count > 66 else { return nil }
            let position = rng.below(wire.count - 66)
            wire[position] ^= UInt8(1 << rng.below(8))
            item.changeSet = Data(wire)
        case 1:
            policy = "truncate"
            item.changeSet = Data(Array(item.changeSet).prefix(rng.below(max(1, item.changeSet.count - 1))))
        case 2:
            policy = "forge"
            guard let forged = forge(from: Array(item.changeSet)) else { return nil }
            item.changeSet = Data(forged)
        case 3:
            // Never the change set this device is being starved of: that would end the withholding.
            let pool = replayPool.filter { !isWithheld($0, from: device) }
            guard !pool.isEmpty else { return nil }
            deliver.items.insert(pool[rng.below(pool.count)], at: rng.below(deliver.items.count + 1))
            return HostileMark(policy: "replay", expected: [])
        case 4:
            deliver.items.shuffle(using: &rng)
            return HostileMark(policy: "reorder", expected: [])
        default:
            deliver.items.append(item)
            return HostileMark(policy: "duplicate", expected: [])
        }
        deliver.items[index] = item
        return HostileMark(policy: policy, expected: Self.forgeryKinds)
    }

    /// AuthResult with a head cursor below what the device already processed: the server
    /// pretends to have forgotten (ADV-44). The device must report a rollback.
    private func rollBack(_ device: Int, _ result: inout Cloak_V1_AuthResult) -> HostileMark? {
        guard devices[device].status == .member, let engine = devices[device].engine else { return nil }
        let processed = engine.syncStatus.processedThrough
        guard processed > 0, result.headCursor >= processed else { return nil }
        result.headCursor = UInt64(rng.below(Int(processed)))
        return HostileMark(policy: "rollback", expected: [.serverRollback])
    }

    /// A served device log that drops entries the device holds (ADV-12), or adds a device
    /// nobody added, signed by a key that is no member's (ADV-10).
    private func tamperLog(_ device: Int, _ log: inout Cloak_V1_DeviceLogEntries) -> HostileMark? {
        guard devices[device].status == .member, let engine = devices[device].engine else { return nil }
        let held = engine.deviceLogWires().count
        if rng.chance(0.5) {
            guard held >= 2, log.entries.count >= held else { return nil }
            log.entries = Array(log.entries.prefix(rng.within(1...(held - 1))))
            return HostileMark(policy: "log rollback", expected: [.deviceLogRollback])
        }
        // Onto a log at least as long as the device's (a shorter one is a rollback first).
        guard log.entries.count >= held, let last = log.entries.last, let injected = injectDevice(after: Array(last))
        else { return nil }
        log.entries.append(Data(injected))
        return HostileMark(policy: "inject device", expected: [.deviceLogForgery, .deviceLogFork])
    }

    /// An add-device entry chained after `lastWire`, naming its signer as the signer but signed
    /// by a fresh key (the server holds no member key).
    private func injectDevice(after lastWire: [UInt8]) -> [UInt8]? {
        guard let last = try? DeviceLogEntry(wire: lastWire),
            var message = try? FrameCodec.parse(Cloak_V1_DeviceLogEntry.self, from: lastWire, what: "device-log entry")
        else { return nil }
        let random = DeterministicRandom(seed: rng.next())
        let forger = Ed25519PrivateKey(using: random)
        message.kind = .addDevice
        message.index = last.index + 1
        message.prevHash = Data(last.hash.bytes)
        message.createdAtMs = now
        message.deviceSigningKey = Data(Ed25519PrivateKey(using: random).publicKey.bytes)
        message.deviceAgreementKey = Data(X25519PrivateKey(using: random).publicKey.bytes)
        message.removedDevice = Data()
        message.cutoffs = []
        message.accountNonce = Data()
        message.signature = Data(forger.signature(for: Array(message.prevHash)))
        return FrameCodec.serialize(message)
    }

    /// Keeps honest deliveries the hostile server may replay later.
    private func rememberDelivered(_ items: [Cloak_V1_StoredChangeSet]) {
        replayPool += items
        if replayPool.count > 200 { replayPool.removeFirst(replayPool.count - 200) }
    }

    /// A change set that looks like `original`'s author wrote it, signed by a key that is not
    /// the author's (the server has no member key).
    private func forge(from original: [UInt8]) -> [UInt8]? {
        guard var message = try? FrameCodec.parse(Cloak_V1_ChangeSet.self, from: original, what: "change set") else {
            return nil
        }
        let key = Ed25519PrivateKey(using: DeterministicRandom(seed: rng.next()))
        message.seq += 1
        message.signature = Data(key.signature(for: Array(message.ciphertext)))
        return FrameCodec.serialize(message)
    }

    /// Checks a device's reaction to a frame the hostile server damaged (after it processed it).
    func checkHostileFrame(_ bytes: [UInt8], device: SimDevice, eventsBefore: Int, heldBefore: Int) {
        // A device a restore forked has stopped (it raised its alarm): it checks nothing more.
        guard !hostileMarks.isEmpty, device.status == .member, let mark = hostileMarks[HostileMark.Key(device: device.index, digest: BLAKE2b.hash(bytes))],
            !mark.expected.isEmpty
        else { return }
        let raised = device.events[eventsBefore...].map(\.kind)
        // An incident already open for the same reason raises no second event (one incident
        // while it lasts): the device still knows.
        let open = device.engine?.syncStatus.incidents.map(\.kind.rawValue) ?? []
        if raised.contains(where: mark.expected.contains) || mark.expected.contains(where: { open.contains($0.rawValue) }) {
            notes.detections[mark.policy, default: 0] += 1
        } else if (device.engine?.heldChangeSets ?? 0) > heldBefore {
            // The damage named a device-log position this device lacks, by an author it does not
            // know: held unverified and unapplied until a log covering it says (§10 rule 2).
            notes.detections["\(mark.policy) held unverified", default: 0] += 1
        } else {
            notes.fail("integrity", "\(device.name) (\(device.status)) raised no alarm for a \(mark.policy)ed change set "
                + "(events: \(raised); \(device.engine?.diagnostics ?? "down"))")
        }
    }
}

extension SimRandom: RandomNumberGenerator {}
