@_spi(Simulation) import CloakClient
import CloakProtocol
import Foundation

/// A change set the hostile server keeps from one device — in live deliveries, catch-up and
/// re-requests alike — until that device reports it withheld (ADV-45). Other devices get it:
/// this is also the split view a server shows when it tells members different histories.
struct Withholding {
    let device: Int
    let conversation: Data
    let author: Data
    let seq: UInt64
    let since: UInt64
    /// The device's event count when the withholding began: the report must come after it.
    let eventsBefore: Int
}

extension SimWorld {
    /// Removes what is withheld from `device` from one delivery; while the server is hostile,
    /// may start withholding one more change set (one at a time per device). True if the
    /// delivery changed.
    func withhold(_ device: Int, _ deliver: inout Cloak_V1_Deliver) -> Bool {
        let before = deliver.items.count
        deliver.items.removeAll { isWithheld($0, from: device) }
        var changed = deliver.items.count != before
        guard hostileOn, devices[device].status == .member, !withholdings.contains(where: { $0.device == device }),
            let own = devices[device].engine?.deviceID, rng.chance(0.1)
        else { return changed }
        for (index, item) in deliver.items.enumerated() {
            guard let header = try? FrameCodec.parse(Cloak_V1_ChangeSet.self, from: Array(item.changeSet), what: "change set"),
                header.author != Data(own.bytes)
            else { continue }
            withholdings.append(Withholding(
                device: device, conversation: header.conversationID, author: header.author, seq: header.seq, since: now,
                eventsBefore: devices[device].events.count))
            fault("withhold")
            deliver.items.remove(at: index)
            changed = true
            break
        }
        return changed
    }

    /// Whether `item` is a change set the server keeps from `device`.
    func isWithheld(_ item: Cloak_V1_StoredChangeSet, from device: Int) -> Bool {
        let mine = withholdings.filter { $0.device == device }
        guard !mine.isEmpty,
            let header = try? FrameCodec.parse(Cloak_V1_ChangeSet.self, from: Array(item.changeSet), what: "change set")
        else { return false }
        return mine.contains { $0.seq == header.seq && $0.author == header.author && $0.conversation == header.conversationID }
    }

    /// After `device` processed something: once it reported a withheld change set, the
    /// server gives up (the device must then catch up); a device that left the account ends
    /// its withholding unreported.
    func checkWithholdings(_ device: SimDevice) {
        if let before = keyWithholdings[device.index] {
            if device.status != .member {
                keyWithholdings[device.index] = nil
            } else if device.events.count > before,
                device.events[before...].contains(where: { $0.kind == .withheld && $0.detail.contains("key of epoch") })
            {
                keyWithholdings[device.index] = nil
                notes.detections["withhold keys", default: 0] += 1
            }
        }
        withholdings.removeAll { held in
            guard held.device == device.index else { return false }
            guard device.status == .member else { return true }
            // Its own report: one about another chain does not end this withholding.
            guard device.events.count > held.eventsBefore,
                device.events[held.eventsBefore...].contains(where: { event in
                    event.kind == .withheld && event.conversation.map { Data($0.bytes) == held.conversation } != false
                        && event.device.map { Data($0.bytes) == held.author } != false
                })
            else { return false }
            notes.detections["withhold", default: 0] += 1
            return true
        }
    }

    /// The limit PROTOCOL.md states: a server can make a member look silent to a device, but
    /// cannot hide a change set once a later one that names it passes between them. After
    /// healing, a member writes into each conversation something is withheld in (the withheld
    /// chain's author if it can, continuing that chain), so the starved device must notice.
    func witnessWithholdings() {
        // Keys: a change set under the newest epoch needs its key.
        for victim in keyWithholdings.keys.sorted() {
            let device = devices[victim]
            guard let witness = members(of: device.account).first(where: { $0.index != victim }), let engine = witness.engine
            else { continue }
            perform("witness", witness) { _ = try engine.createConversation(title: canaryText("title")) }
        }
        for held in withholdings {
            let victim = devices[held.device]
            let live = members(of: victim.account).filter { $0.index != victim.index }
            guard let witness = live.first(where: { $0.engine.map { Data($0.deviceID.bytes) } == held.author }) ?? live.first,
                let engine = witness.engine,
                let conversation = try? ConversationID(validating: held.conversation, field: "conversation_id")
            else { continue }
            perform("witness", witness) {
                if conversation == .library {
                    _ = try engine.createConversation(title: canaryText("title"))
                } else {
                    try engine.rename(conversation, to: canaryText("rename"))
                }
            }
        }
    }

    /// Whether `engine` holds the key of every epoch its device log has begun.
    func holdsEveryEpochKey(_ engine: ClientEngine) -> Bool {
        guard let last = engine.deviceLogWires().last, let entry = try? DeviceLogEntry(wire: last) else { return false }
        return Set(1...max(entry.epoch, 1)).isSubset(of: engine.heldEpochs())
    }

    /// At the end: a withholding still going is a failure unless the device caught up with its
    /// account some other way (a snapshot covering the change set), so nothing was kept from it.
    func checkWithholdingsReported() {
        for (victim, before) in keyWithholdings.sorted(by: { $0.key < $1.key }) {
            let device = devices[victim]
            guard device.status == .member, let engine = device.engine else { continue }
            let others = members(of: device.account).filter { $0.index != victim }.compactMap(\.engine)
            if let other = others.first, fingerprint(other) == fingerprint(engine) { continue }  // it needed no new key
            // Nothing to keep from it: it holds every epoch's key (seed 996: the account's only
            // member, which had started every epoch itself, had no other member to compare with).
            if holdsEveryEpochKey(engine) { continue }
            notes.fail("integrity", "\(device.name) never reported change sets it could not read while the server kept "
                + "key envelopes from it (events since: \(device.events[before...].map(\.kind)))")
        }
        for held in withholdings {
            let device = devices[held.device]
            guard device.status == .member, let engine = device.engine else { continue }
            let others = members(of: device.account).filter { $0.index != device.index }.compactMap(\.engine)
            let mine = fingerprint(engine)
            if !others.isEmpty, others.allSatisfy({ fingerprint($0) == mine }) {
                notes.detections["withhold covered by a snapshot", default: 0] += 1
                continue
            }
            let author = devices.first { $0.engine.map { Data($0.deviceID.bytes) } == held.author }
            // A removed author's chain ends at its removal's cut-off for every device (§10): a
            // position past it is nothing the device may expect (convergence still checks the rest).
            if let author, author.status == .removed {
                notes.detections["withhold of a removed author's chain", default: 0] += 1
                continue
            }
            notes.fail("integrity", "\(device.name) never reported change set \(held.seq) of \(author?.name ?? "?") "
                + "(\(author.map { "\($0.status)" } ?? "-")) in \(held.conversation == Data(count: 16) ? "the library" : "a conversation") "
                + "that the server withheld from it since \(held.since / 1000 % 100_000) s; "
                + "events since: \(device.events[held.eventsBefore...].map(\.kind)); \(engine.diagnostics)")
        }
    }
}
