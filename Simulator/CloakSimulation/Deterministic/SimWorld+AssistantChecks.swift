@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol

// The assistants' checks (ADV-49, PROTOCOL.md §29), beside confidentiality, revocation and
// convergence: an honest assistant holds and shows nothing of a conversation outside the scope
// it was ever granted, can decrypt nothing its revocation, restriction or expiry took away, and
// every device shows its replies; a hostile one gets nothing of what it tried accepted
// (``checkHostileAssistants()``). Its store's bytes are scanned with every device's
// (``checkConfidentiality()``).
extension SimWorld {
    /// Every assistant check of a finished run.
    func checkAssistants() {
        checkAssistantScope()
        checkAssistantKeys()
        for gap in assistantReplyGaps() { notes.fail("assistant replies", gap) }
        checkHostileAssistants()
    }

    /// Whether every active assistant's replies are on every device (the liveness phase waits
    /// for it as it waits for convergence).
    func assistantsSettled() -> Bool { assistants.isEmpty || assistantReplyGaps().isEmpty }

    /// The log as a live member of `account` verified it.
    private func witnessLog(_ account: Int) -> DeviceLog? {
        guard let witness = members(of: account).first?.engine else { return nil }
        return try? DeviceLog(verifying: witness.deviceLogWires().map { try DeviceLogEntry(wire: $0) })
    }

    /// Nothing outside the scope: no conversation, no key, no stored change set (the server
    /// routes it nothing else) and no canary written in another conversation in what it shows.
    func checkAssistantScope() {
        var home: [String: ConversationID] = [:]
        for message in notes.messages.values {
            for word in message.text.split(separator: " ") where word.hasPrefix("cloak-canary-") {
                home[String(word)] = message.conversation
            }
        }
        for assistant in assistants where !assistant.hostile {
            guard let engine = assistant.client.engine else { continue }
            let name = assistant.client.name
            for conversation in engine.knownConversations() where !assistant.everScope.contains(conversation) {
                notes.fail("assistant scope", "\(name) holds a conversation that was never in its scope")
            }
            for held in engine.heldConversationKeys() where !assistant.everScope.contains(held.conversation) {
                notes.fail("assistant scope", "\(name) holds a key of epoch \(held.epoch) of a conversation never in its scope")
            }
            for wire in (try? engine.storedChangeSetWires()) ?? [] {
                guard let changeSet = try? ChangeSet(wire: wire), !assistant.everScope.contains(changeSet.header.conversation)
                else { continue }
                notes.fail("assistant scope", "\(name) stored a change set of a conversation never in its scope (server routing)")
            }
            for conversation in engine.knownConversations() {
                for message in engine.conversation(conversation)?.messages ?? [] {
                    for word in message.text.split(separator: " ") {
                        guard let origin = home[String(word)], !assistant.everScope.contains(origin) else { continue }
                        notes.fail("assistant scope", "\(name) shows a canary written in a conversation outside its scope")
                    }
                }
            }
        }
    }

    /// The assistant holds no key a device holds for an epoch of a conversation that began after
    /// its scope lost that conversation (by a restriction, a revocation or the end of an expired
    /// grant): the same key, compared by digest, as the devices' revocation check does.
    func checkAssistantKeys() {
        for assistant in assistants where !assistant.hostile {
            guard let witness = members(of: assistant.account).first?.engine else { continue }
            checkAssistantKeys(of: assistant, witness: witness, when: "at the end")
        }
    }

    /// The same for one assistant, by the log `witness` verified: at the end of a run, and just
    /// before a device grants it again a conversation a restriction took (PROTOCOL.md §29: a
    /// grant seals the conversation's history, so once regranted every epoch up to the grant is
    /// its to read again — but not before: what was written between the restriction and the
    /// regrant stays sealed from it until then). Then only that conversation is judged: the
    /// granting device's log may lag behind epochs the assistant rightly holds keys of for the
    /// rest of its scope.
    func checkAssistantKeys(
        of assistant: SimAssistant, witness: ClientEngine, when: String, only conversation: ConversationID? = nil
    ) {
        guard let engine = assistant.client.engine,
            let log = try? DeviceLog(verifying: witness.deviceLogWires().map { try DeviceLogEntry(wire: $0) }),
            let member = log.assistants[assistant.id]
        else { return }
        // The newest epoch in which each conversation was in its scope (a grant seals the
        // history of its conversations: every earlier epoch is its to read).
        var entitled: [ConversationID: UInt64] = [:]
        for (index, entry) in log.entries.enumerated() {
            guard let terms = member.terms(atIndex: UInt64(index)) else { continue }
            for conversation in terms.scope { entitled[conversation] = max(entitled[conversation] ?? 0, entry.epoch) }
        }
        let devices = members(of: assistant.account).compactMap(\.engine)
        for held in engine.heldConversationKeys() where conversation.map({ $0 == held.conversation }) ?? true {
            if let last = entitled[held.conversation], held.epoch <= last { continue }
            guard let mine = engine.conversationKeyDigest(held.conversation, epoch: held.epoch),
                devices.contains(where: { $0.conversationKeyDigest(held.conversation, epoch: held.epoch) == mine })
            else { continue }
            let lost = entitled[held.conversation].map { "its scope lost it after epoch \($0)" } ?? "never in its scope"
            notes.fail("assistant revocation", "\(assistant.client.name) can decrypt epoch \(held.epoch) of a conversation \(when): \(lost)")
        }
    }

    /// Whether the assistant verified an entry at or past the restored backup's length that the
    /// account's log no longer holds (PROTOCOL.md §30: what a restore cannot heal). One that saw
    /// its own revocation there wiped its keys and stopped, as it must, and never fetches the log
    /// again to raise the fork: only the two logs show it.
    private func lostToRestore(_ engine: ClientEngine, account: Int, witness: DeviceLog) -> Bool {
        guard let restored = restoredLogLength[account] else { return false }
        let held = engine.deviceLogWires().compactMap { try? DeviceLogEntry(wire: $0) }
        return held.indices.contains { $0 >= restored && ($0 >= witness.entries.count || held[$0].hash != witness.entries[$0].hash) }
    }

    /// For each assistant still granted, not expired and not forked by a restore: its client is
    /// synced, and every reply it finished in a conversation still in its scope is on every live
    /// device with its text (unless a device edited or deleted it since, or a restriction's
    /// cut-off dropped it before a regrant).
    func assistantReplyGaps() -> [String] {
        var gaps: [String] = []
        for assistant in assistants where !assistant.hostile && assistant.joined && !assistant.forkedByRestore {
            guard let engine = assistant.client.engine, let log = witnessLog(assistant.account),
                let member = log.assistants[assistant.id], member.endedAt == nil, now < member.current.expiresAtMs,
                !lostToRestore(engine, account: assistant.account, witness: log)
            else { continue }
            // An honest assistant reading a member's signed heads learns of a hostile assistant's
            // write the colluding server stored none of, as a device does: its report is the
            // detection (PROTOCOL.md §30), not a sync failure.
            guard engine.isSynced || withholdsOnlyHostileWrites(engine.syncStatus, account: assistant.account) else {
                gaps.append("\(assistant.client.name) is not synced: \(engine.diagnostics)")
                continue
            }
            for id in assistant.replyOrder {
                guard let reply = assistant.replies[id], reply.finished, member.current.covers(reply.conversation),
                    notes.messages[id].map({ !$0.edited && !$0.deleted }) ?? true
                else { continue }
                // Granted again after a restriction took the conversation (§29): what of a reply
                // lay past that restriction's cut-off the assistant deleted itself, and it is on
                // no device — the whole reply, or the chunks streamed after the cut-off. What it
                // still shows must be on every device.
                var expected = reply.text
                if Self.accessEnded(of: assistant.id, to: reply.conversation, in: log) {
                    guard let own = engine.message(id, in: reply.conversation) else { continue }
                    expected = own.text
                }
                for device in members(of: assistant.account) {
                    guard let witness = device.engine else { continue }
                    guard let rendered = witness.message(id, in: reply.conversation) else {
                        // A reply to what a removal's cut-off dropped waits for its parent on
                        // every device alike (PROTOCOL.md §10), as a member's reply does.
                        if let message = notes.messages[id], lostToRemoval(message, on: witness) != nil { continue }
                        gaps.append("\(device.name) lacks a reply \(assistant.client.name) finished")
                        continue
                    }
                    if !rendered.isDeleted, rendered.text != expected {
                        gaps.append("\(device.name) shows \(rendered.text.count) characters of a reply \(assistant.client.name) "
                            + "streamed with \(expected.count)")
                    }
                }
            }
        }
        return gaps
    }
}
