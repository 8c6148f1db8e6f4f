@_spi(Simulation) import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

/// What the hostile server did to one frame, and which alarms the receiving device must raise
/// when it processes it (empty: nothing to detect, but the rendered state must not change).
struct HostileMark {
    let policy: String
    let expected: Set<SecurityEvent.Kind>
}

extension SimWorld {
    /// Alarms a change set the server damaged or forged must raise (ADV-02, ADV-03, ADV-06).
    static let forgeryKinds: Set<SecurityEvent.Kind> = [
        .badSignature, .malformedRecord, .decryptionFailed, .unknownAuthor, .wrongAccount,
    ]

    /// Turns the server hostile for a window of the workload: every frame it delivers may be
    /// tampered with, truncated, forged, replayed or reordered (docs/threats.md "What the simulator
    /// runs"). Each device that processes a damaged item must raise its alarm.
    func scheduleHostility(window: Int) {
        let start = UInt64(rng.below(max(1, window / 2)))
        let length = UInt64(rng.within(2_000...max(2_001, window / 2)))
        schedule(after: start) { world in
            world.fault("hostile on")
            world.intercept = { world, device, direction, bytes in world.hostile(device, direction, bytes) }
        }
        schedule(after: start + length) { world in
            world.fault("hostile off")
            world.intercept = nil
        }
    }

    /// One frame through the hostile server.
    func hostile(_ device: Int, _ direction: Direction, _ bytes: [UInt8]) -> [[UInt8]] {
        guard direction == .toClient, let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 24),
            case .deliver(var deliver) = frame.body, !deliver.items.isEmpty, rng.chance(0.3)
        else {
            rememberDelivered(bytes)
            return [bytes]
        }
        let index = rng.below(deliver.items.count)
        var item = deliver.items[index]
        var expected: Set<SecurityEvent.Kind> = []
        let policy: String
        switch rng.below(6) {
        case 0:
            policy = "tamper"
            var wire = Array(item.changeSet)
            let position = rng.below(wire.count)
            wire[position] ^= UInt8(1 << rng.below(8))
            item.changeSet = Data(wire)
            expected = Self.forgeryKinds
        case 1:
            policy = "truncate"
            item.changeSet = Data(Array(item.changeSet).prefix(rng.below(max(1, item.changeSet.count - 1))))
            expected = Self.forgeryKinds
        case 2:
            policy = "forge"
            guard let forged = forge(from: Array(item.changeSet)) else { return [bytes] }
            item.changeSet = Data(forged)
            expected = Self.forgeryKinds
        case 3:
            policy = "replay"
            guard !replayPool.isEmpty else { return [bytes] }
            let old = replayPool[rng.below(replayPool.count)]
            deliver.items.insert(old, at: rng.below(deliver.items.count + 1))
        case 4:
            policy = "reorder"
            deliver.items.shuffle(using: &rng)
        default:
            policy = "duplicate"
            deliver.items.append(item)
        }
        if policy != "replay" && policy != "reorder" && policy != "duplicate" {
            deliver.items[index] = item
        }
        fault(policy)
        var out = frame
        out.body = .deliver(deliver)
        let damaged = FrameCodec.encode(out)
        hostileMarks[BLAKE2b.hash(damaged)] = HostileMark(policy: policy, expected: expected)
        return [damaged]
    }

    /// Keeps honest deliveries the hostile server may replay later.
    private func rememberDelivered(_ bytes: [UInt8]) {
        guard intercept != nil, let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 24),
            case .deliver(let deliver) = frame.body
        else { return }
        replayPool += deliver.items
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
    func checkHostileFrame(_ bytes: [UInt8], device: SimDevice, eventsBefore: Int) {
        guard !hostileMarks.isEmpty, let mark = hostileMarks[BLAKE2b.hash(bytes)], !mark.expected.isEmpty else { return }
        let raised = device.events[eventsBefore...].map(\.kind)
        if raised.contains(where: mark.expected.contains) {
            notes.detections[mark.policy, default: 0] += 1
        } else {
            notes.fail("integrity", "\(device.name) raised no alarm for a \(mark.policy)ed change set (events: \(raised))")
        }
    }
}

extension SimRandom: RandomNumberGenerator {}
