@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol
import CloakServer
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension SimWorld {
    /// Whether every account's live members are synced and show the same state.
    func converged() -> Bool {
        for account in 0..<options.accounts {
            let live = members(of: account)
            guard live.allSatisfy({ $0.engine?.isSynced == true }) else { return false }
            guard let first = live.first?.engine else { continue }
            let reference = fingerprint(first)
            for device in live.dropFirst() where fingerprint(device.engine!) != reference { return false }
        }
        return true
    }

    /// The library's and every conversation's state hash, and every rendered view.
    func fingerprint(_ engine: ClientEngine) -> [String] {
        var lines = ["library \(engine.stateHash(of: .library) ?? [])"]
        for summary in engine.conversations() {
            lines.append("\(summary.id) \(engine.stateHash(of: summary.id) ?? []) \(summary.title ?? "-") \(summary.state)")
            if let view = engine.conversation(summary.id) {
                lines.append(view.messages.map { "\($0.id):\($0.text):\($0.reactions.count)" }.joined(separator: "|"))
            }
        }
        return lines
    }

    /// Every check of a finished run (docs/threats.md "What the simulator runs").
    func checkAll() {
        checkConvergence()
        checkWithholdingsReported()
        checkDurability()
        checkRevocation()
        checkConfidentiality()
        checkAssistants()
    }

    func checkConvergence() {
        for account in 0..<options.accounts {
            let live = members(of: account)
            guard let first = live.first, let reference = first.engine.map(fingerprint) else { continue }
            for device in live.dropFirst() {
                guard let engine = device.engine else { continue }
                let mine = fingerprint(engine)
                if mine != reference {
                    let difference = zip(reference, mine).first { $0 != $1 }.map { "\($0.0) vs \($0.1)" } ?? "different sizes"
                    notes.fail("convergence", "\(device.name) differs from \(first.name): \(difference.prefix(300)); its events: "
                        + "\(device.events.suffix(6).map { "\($0.kind): \($0.detail)" })")
                }
            }
            for device in live where device.engine?.isSynced != true {
                let status = device.engine?.syncStatus
                if let status, withholdsOnlyHostileWrites(status, account: account) {
                    notes.detections["hostile assistant write withheld", default: 0] += 1
                    continue
                }
                let missing = status?.members.filter { $0.knownMissing > 0 }.map { "\($0.knownMissing)" } ?? []
                notes.fail("convergence", "\(device.name) is not synced after healing: \(status.map { "\($0.connection)" } ?? "down"), "
                    + "\(status?.unacknowledgedEdits ?? -1) unacknowledged, incidents \(status?.incidents.map(\.detail) ?? []), "
                    + "missing \(missing), \(device.engine?.diagnostics ?? ""), events \(device.events.suffix(4).map { "\($0.kind): \($0.detail)" })")
            }
        }
    }

    /// Whether all a device lacks is a hostile assistant's writes: the colluding server handed
    /// them to the devices up at the time and stored none, and a revocation's cut-off names the
    /// newest one a device received intact (§10 "Choosing cut-offs") — so every other device
    /// knows it exists and reports it withheld for good. That is the server withholding, and
    /// the report is the detection; nothing else may be open.
    func withholdsOnlyHostileWrites(_ status: SyncStatus, account: Int) -> Bool {
        let hostile = Set(assistants.filter { $0.account == account && $0.hostile && !$0.hostileWrites.isEmpty }.map(\.id))
        guard !hostile.isEmpty, status.connection == .live, status.unacknowledgedEdits == 0, !status.incidents.isEmpty
        else { return false }
        return status.incidents.allSatisfy { $0.kind == .withheld && $0.device.map(hostile.contains) == true }
            && status.members.allSatisfy { $0.knownMissing == 0 || hostile.contains($0.device) }
    }

    /// Every message an API call accepted, on a device that is still a member, is on every
    /// live member of its account, with the text it was given unless edited or deleted since.
    func checkDurability() {
        for id in notes.messageOrder {
            guard let message = notes.messages[id], devices[message.author].status == .member else { continue }
            for device in members(of: message.account) {
                guard let engine = device.engine else { continue }
                guard let rendered = engine.message(id, in: message.conversation) else {
                    if let lost = lostToRemoval(message, on: engine) {
                        // PROTOCOL.md §10: a reply to what a removal's cut-off dropped waits for
                        // a parent that never comes, on every device alike; the drop itself
                        // raised beyondRemovalCutoff where it had been accepted. §29: an
                        // assistant's revocation or restriction cuts off the same way.
                        notes.detections["reply to a message past a removal's cut-off (\(lost))", default: 0] += 1
                        continue
                    }
                    let writer = devices[message.author]
                    let chain = writer.engine.map { engine.chainPosition(message.conversation, author: $0.deviceID) }
                    let theirs = writer.engine.map { $0.chainPosition(message.conversation, author: $0.deviceID).seq }
                    notes.fail("durability", "\(device.name) lacks a \(message.kind) message \(writer.name) wrote at "
                        + "\(message.createdAt % 100_000_000) in a conversation with \(engine.conversation(message.conversation)?.messages.count ?? -1) "
                        + "active messages (known: \(engine.conversations().contains { $0.id == message.conversation })); it holds "
                        + "the writer's chain to \(chain.map { "\($0.seq) (missing \($0.knownMissing))" } ?? "?"), the writer to \(theirs.map(String.init) ?? "?")")
                    continue
                }
                if !message.edited, !message.deleted, !rendered.isDeleted, rendered.text != message.text {
                    notes.fail("durability", "\(device.name) shows \(rendered.text.count) characters of a message "
                        + "\(devices[message.author].name) wrote with \(message.text.count)")
                }
            }
        }
    }

    /// The removed writer of a message `message` hangs on through ancestors `engine` does not
    /// have either (its change set lay past the removal's cut-off): nil when nothing explains
    /// the missing message (an ancestor that is there, or one missing for no such reason).
    /// A removed device, or an assistant whose access to the conversation `engine`'s log ended
    /// once (a revocation, or a restriction that took the conversation away, even if a later
    /// grant gave it back: PROTOCOL.md §29 cuts off its change sets as §10 does a removed
    /// device's, and a regrant admits only change sets naming an entry after it).
    func lostToRemoval(_ message: SimNotes.Message, on engine: ClientEngine) -> String? {
        var next = message.parent
        var seen: Set<MessageID> = []
        var log: DeviceLog?
        while let id = next, seen.insert(id).inserted {
            guard engine.message(id, in: message.conversation) == nil, let ancestor = notes.messages[id] else { return nil }
            // A missing member's message may itself hang on a dropped one: look further up.
            let author = devices[ancestor.author]
            if author.status == .removed { return author.name }
            if let assistant = author.engine?.deviceID {
                if log == nil { log = try? DeviceLog(verifying: engine.deviceLogWires().map { try DeviceLogEntry(wire: $0) }) }
                if let log, Self.accessEnded(of: assistant, to: message.conversation, in: log) { return author.name }
            }
            next = ancestor.parent
        }
        return nil
    }

    /// Whether an entry of `log` revoked `assistant` or took `conversation` from its scope.
    static func accessEnded(of assistant: DeviceID, to conversation: ConversationID, in log: DeviceLog) -> Bool {
        guard let member = log.assistants[assistant] else { return false }
        return member.removals.contains { index in
            let entry = log.entries[Int(index)]
            return entry.kind == .revokeAssistant || entry.scope.contains(conversation)
        }
    }

    /// A removed device holds no key of an epoch its removal started (ADV-08).
    func checkRevocation() {
        for device in devices where device.status == .removed {
            guard let engine = device.engine,
                let witness = members(of: device.account).first?.engine,
                let log = try? DeviceLog(verifying: witness.deviceLogWires().map { try DeviceLogEntry(wire: $0) }),
                let removal = log.removal(of: engine.deviceID)
            else { continue }
            // The same key, not just the same epoch number: after a restore forked the log, an
            // epoch number can name different keys on the two sides of the fork.
            for epoch in engine.heldEpochs() where epoch >= removal.epoch {
                let theirs = members(of: device.account).compactMap { $0.engine?.epochKeyDigest(epoch) }
                guard let mine = engine.epochKeyDigest(epoch), theirs.contains(mine) else { continue }
                notes.fail("revocation", "\(device.name) holds the key of epoch \(epoch); epoch \(removal.epoch) began with its removal")
            }
        }
    }

    /// No canary in the server's store, the frames, the logs, or any device's store (ADV-15).
    func checkConfidentiality() {
        let scanner = CanaryPrefixScanner.shared
        if let found = scanner.find(in: server.store.allStoredBytes()) {
            notes.fail("confidentiality", "a canary (\(found)) is in the server's store")
        }
        for device in devices {
            if let found = scanner.find(in: device.store.allBytes()) {
                notes.fail("confidentiality", "a canary (\(found)) is in \(device.name)'s store")
            }
        }
        if let found = scanner.find(in: logs.all.map { Array($0.utf8) }) {
            notes.fail("confidentiality", "a canary (\(found)) is in the logs")
        }
    }

    /// Checks one frame on the wire: no canary, and no change set nonce seen before (ADV-14).
    func inspect(_ bytes: [UInt8], direction: Direction) {
        if let found = CanaryPrefixScanner.shared.find(in: [bytes]) {
            notes.fail("confidentiality", "a canary (\(found)) crossed the network")
        }
        guard direction == .toServer, let frame = try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 24),
            case .push(let push) = frame.body
        else { return }
        for wire in push.changeSets {
            guard let changeSet = try? ChangeSet(wire: Array(wire)) else { continue }
            notes.changeSetsSeen += 1
            if !notes.nonces.insert(changeSet.header.nonce).inserted, !sentHashes.contains(changeSet.hash) {
                notes.fail("nonce", "a nonce repeats in a new change set (ADV-14)")
            }
            sentHashes.insert(changeSet.hash)
        }
    }
}

/// Finds "cloak-canary-" in the encodings a careless implementation might use (UTF-8, UTF-16,
/// hex, base64 at each alignment): every canary starts with it, so one search covers all.
struct CanaryPrefixScanner: Sendable {
    let patterns: [(String, [UInt8])]

    /// One scanner for every frame: building the patterns (hex and base64 of the prefix) cost
    /// more than scanning a frame, and a run scans tens of thousands of frames.
    static let shared = CanaryPrefixScanner()

    init() {
        let prefix = "cloak-canary-"
        let utf8 = Array(prefix.utf8)
        var patterns: [(String, [UInt8])] = [("utf-8", utf8)]
        patterns.append(("utf-16le", utf8.flatMap { [$0, 0] }))
        patterns.append(("utf-16be", utf8.flatMap { [0, $0] }))
        patterns.append(("hex", Array(utf8.map { String(format: "%02x", $0) }.joined().utf8)))
        for shift in 0..<3 {
            // The base64 of the prefix after `shift` leading bytes, minus the characters that
            // mix in neighbouring bytes.
            let encoded = Data([UInt8](repeating: 0, count: shift) + utf8).base64EncodedString()
            let skip = (shift * 4 + 2) / 3 + (shift == 0 ? 0 : 1)
            let stable = Array(encoded.utf8).dropFirst(skip).dropLast(4)
            if stable.count >= 8 { patterns.append(("base64", Array(stable))) }
        }
        self.patterns = patterns
    }

    /// The encoding of the first canary found in any of `chunks`.
    func find(in chunks: [[UInt8]]) -> String? {
        for chunk in chunks {
            for (name, pattern) in patterns where chunk.count >= pattern.count {
                let hit = chunk.withUnsafeBytes { haystack in
                    pattern.withUnsafeBytes { needle in Self.contains(haystack, needle) }
                }
                if hit { return name }
            }
        }
        return nil
    }

    /// Whether `needle` occurs in `haystack`: `memchr` to the next candidate first byte, then
    /// `memcmp` (glibc's `memmem` is not visible to Swift without `_GNU_SOURCE`).
    static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: UnsafeRawBufferPointer) -> Bool {
        guard let base = haystack.baseAddress, let first = needle.first, let needleBase = needle.baseAddress else {
            return false
        }
        var offset = 0
        while offset + needle.count <= haystack.count {
            guard let found = memchr(base + offset, Int32(first), haystack.count - offset - needle.count + 1) else {
                return false
            }
            let position = base.distance(to: UnsafeRawPointer(found))
            if memcmp(base + position, needleBase, needle.count) == 0 { return true }
            offset = position + 1
        }
        return false
    }
}
