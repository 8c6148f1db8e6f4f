import CloakAgent
@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol

// Assistants in the workload (PROTOCOL.md §29, issue 27): per account, sometimes, a device
// grants an assistant some conversations until an expiry in virtual time; users ask it things;
// it answers by streaming chunk by chunk; devices widen its scope (a new conversation, or again
// one a restriction took: a regrant) or move its expiry later, restrict or revoke it, or its
// expiry passes.
// Every decision draws from ``SimWorld/assistantRandom``, a stream of its own, so runs without
// assistants draw exactly what they drew before.
extension SimWorld {
    /// Schedules each account's assistants (none unless ``SimOptions/assistants``); with a
    /// hostile server, sometimes also a hostile assistant the server colludes with.
    func scheduleAssistants(hostile: Bool) {
        guard options.assistants else { return }
        let window = Int(options.workloadMillis)
        for account in 0..<options.accounts {
            if assistantRandom.chance(0.7) {
                let at = UInt64(assistantRandom.below(max(1, window / 2)))
                schedule(after: at) { world in world.grantAssistant(account, hostile: false) }
            }
            if hostile, assistantRandom.chance(0.6) {
                // Later than most: the account has more conversations, one outside its scope.
                let at = UInt64(window / 3 + assistantRandom.below(max(1, window / 3)))
                schedule(after: at) { world in world.grantAssistant(account, hostile: true) }
            }
        }
    }

    /// A device of `account` grants a new assistant one to three conversations it knows (a
    /// hostile one: up to two, and one more must exist outside its scope).
    func grantAssistant(_ account: Int, hostile: Bool) {
        let granters = members(of: account)
        guard !granters.isEmpty else { return notes.count("assistant grant skipped") }
        let granter = assistantRandom.pick(granters)
        guard let engine = granter.engine, let accountID = engine.accountID else { return }
        var pool = engine.conversations().map(\.id)
        let most = hostile ? min(2, pool.count - 1) : min(3, pool.count)
        guard most >= 1 else { return notes.count("assistant grant skipped") }
        var scope: [ConversationID] = []
        for _ in 0..<(hostile ? most : assistantRandom.within(1...most)) { scope.append(pool.remove(at: assistantRandom.below(pool.count))) }
        let client = SimDevice(
            index: devices.count, account: account, name: "a\(account)ai\(assistants.count)", seed: assistantRandom.next())
        do { try client.open(clock: clock, configuration: configuration, verdicts: signatureVerdicts, logger: logger) } catch {
            return notes.fail("open", "\(client.name) could not open its store: \(error)")
        }
        guard let assistantEngine = client.engine else { return }
        devices.append(client)
        let assistant = SimAssistant(client: client, id: assistantEngine.deviceID, hostile: hostile)
        assistants.append(assistant)
        let lifetime =
            hostile
            ? UInt64(assistantRandom.within(15_000...30_000))
            : assistantRandom.chance(0.4) ? 3_600_000 : UInt64(assistantRandom.within(10_000...90_000))
        assistant.expiresAt = now + lifetime
        assistant.scope = scope
        assistant.everScope = Set(scope)
        let invitation = assistantEngine.assistantInvitation()
        notes.count(hostile ? "hostile assistant grant" : "assistant grant")
        granter.flow({ $0.grantAssistant(invitation, conversations: scope, expiresAtMillis: assistant.expiresAt) }) {
            [unowned self] result in
            guard case .success = result else { return notes.flowFailed("grant assistant", granter.name, result) }
            notes.count("assistant granted")
            join(assistant, account: accountID)
        }
        pump(granter)
    }

    /// The assistant's client joins through the server (it retries a few times: a cut
    /// connection fails the flow, as it would fail `cloak-agent serve`'s first attempt).
    private func join(_ assistant: SimAssistant, account: AccountID) {
        assistant.joinAttempts += 1
        assistant.client.flow({ $0.joinAsAssistant(account: account) }) { [unowned self] result in
            guard case .success = result else {
                notes.flowFailed("join as assistant", assistant.client.name, result)
                if assistant.joinAttempts < 5 { schedule(after: 2_000) { world in world.join(assistant, account: account) } }
                return
            }
            assistant.joined = true
            notes.count("assistant joined")
            assistant.client.engine?.startSync()
            pump(assistant.client)
            if assistant.hostile { scheduleAttacks(assistant) } else { scheduleLife(assistant) }
        }
        pump(assistant.client)
    }

    /// Questions, the agent's polling, and perhaps a restriction or a revocation.
    private func scheduleLife(_ assistant: SimAssistant) {
        for _ in 0..<assistantRandom.within(2...6) {
            schedule(after: UInt64(assistantRandom.within(200...30_000))) { world in world.ask(assistant) }
        }
        assistant.polling = true
        schedule(after: 300) { world in world.poll(assistant) }
        let roll = assistantRandom.below(100)
        let at = UInt64(assistantRandom.within(3_000...40_000))
        if roll < 30 {
            schedule(after: at) { world in world.end(assistant, restricting: false) }
        } else if roll < 60 {
            schedule(after: at) { world in world.end(assistant, restricting: true) }
        }
        // Sometimes a device grants it more: after a restriction most often (a regrant of what
        // the restriction took), else at any time, before or after an end that may come.
        if assistantRandom.chance(0.6) {
            let afterRestriction = (30..<60).contains(roll) && assistantRandom.chance(0.7)
            let widenAt =
                afterRestriction
                ? at + UInt64(assistantRandom.within(500...20_000)) : UInt64(assistantRandom.within(1_000...45_000))
            schedule(after: widenAt) { world in world.widen(assistant) }
        }
    }

    /// A user asks the assistant something in one of its conversations.
    private func ask(_ assistant: SimAssistant) {
        let askers = members(of: assistant.account)
        guard !assistant.revoked, !assistant.scope.isEmpty, !askers.isEmpty else { return }
        let device = assistantRandom.pick(askers)
        let conversation = assistantRandom.pick(assistant.scope)
        guard let engine = device.engine else { return }
        perform("ask assistant", device) {
            let text = canaryText("question")
            record(try engine.appendMessage(to: conversation, role: .user, text: text), text, in: conversation, by: device, kind: "question")
        }
    }

    /// A device revokes the assistant, or removes one conversation from its scope.
    private func end(_ assistant: SimAssistant, restricting: Bool) {
        let deciders = members(of: assistant.account)
        guard !deciders.isEmpty else { return }
        let device = assistantRandom.pick(deciders)
        if restricting, assistant.scope.count > 1 {
            let removing = [assistantRandom.pick(assistant.scope)]
            notes.count("assistant restrict")
            device.flow({ $0.restrictAssistant(assistant.id, removing: removing) }) { [unowned self] result in
                guard case .success = result else { return notes.flowFailed("restrict assistant", device.name, result) }
                refreshScope(assistant, as: device)
            }
        } else {
            notes.count("assistant revoke")
            device.flow({ $0.revokeAssistant(assistant.id) }) { [unowned self] result in
                guard case .success = result else { return notes.flowFailed("revoke assistant", device.name, result) }
                assistant.revoked = true
            }
        }
        pump(device)
    }

    /// A device grants the assistant again (PROTOCOL.md §29): a conversation a restriction took
    /// from its scope (a regrant), one it never had (a widening), or only a later expiry. A
    /// regrant seals the conversation's history again, so before it the assistant must hold no
    /// key of an epoch that began while the conversation was out of its scope.
    private func widen(_ assistant: SimAssistant) {
        let granters = members(of: assistant.account)
        guard !assistant.revoked, !granters.isEmpty, let invitation = assistant.client.engine?.assistantInvitation() else {
            return notes.count("assistant widen skipped")
        }
        let granter = assistantRandom.pick(granters)
        guard let engine = granter.engine,
            let log = try? DeviceLog(verifying: engine.deviceLogWires().map { try DeviceLogEntry(wire: $0) }),
            let grant = log.assistants[assistant.id]?.current, log.assistants[assistant.id]?.endedAt == nil,
            now + 5_000 < grant.expiresAtMs
        else { return notes.count("assistant widen skipped") }
        let known = engine.conversations().map(\.id)
        // Taken by a restriction, as the granter's log shows; never granted, as far as the
        // simulator knows (it counts a grant from the moment it starts one).
        let taken = known.filter { !grant.covers($0) && Self.accessEnded(of: assistant.id, to: $0, in: log) }
        let fresh = known.filter { !assistant.everScope.contains($0) }
        var kind = "assistant extend"
        // The scope it has: such a grant only moves the expiry.
        var adding = grant.scope
        if !taken.isEmpty, assistantRandom.chance(0.7) {
            kind = "assistant regrant"
            adding = [assistantRandom.pick(taken)]
            checkAssistantKeys(of: assistant, witness: engine, when: "before a regrant", only: adding[0])
        } else if !fresh.isEmpty, assistantRandom.chance(0.8) {
            kind = "assistant widen"
            adding = [assistantRandom.pick(fresh)]
        }
        let expiresAt =
            kind == "assistant extend" || assistantRandom.chance(0.4)
            ? grant.expiresAtMs + UInt64(assistantRandom.within(10_000...60_000)) : grant.expiresAtMs
        // What it may read from the moment the entry is appended, even if the flow then fails.
        assistant.everScope.formUnion(adding)
        notes.count(kind)
        granter.flow({ $0.grantAssistant(invitation, conversations: adding, expiresAtMillis: expiresAt) }) {
            [unowned self] result in
            guard case .success = result else { return notes.flowFailed("widen assistant", granter.name, result) }
            notes.count("assistant widened")
            assistant.expiresAt = max(assistant.expiresAt, expiresAt)
            refreshScope(assistant, as: granter)
            if !assistant.polling {
                assistant.polling = true
                schedule(after: 300) { world in world.poll(assistant) }
            }
        }
        pump(granter)
    }

    /// The assistant's scope as `device`'s log states it after a change the device made.
    private func refreshScope(_ assistant: SimAssistant, as device: SimDevice) {
        guard let grant = (try? device.engine?.assistants())?.first(where: { $0.id == assistant.id }) else { return }
        assistant.scope = grant.scope
    }

    // MARK: Answering

    /// What `cloak-agent serve` does when its client reports a change: shows the agent core
    /// every conversation of its scope. Polled every 700 virtual ms while the grant lasts.
    private func poll(_ assistant: SimAssistant) {
        guard let engine = assistant.client.engine else { return }
        var effects = assistant.agent.handle(.tick, now: now)
        for conversation in engine.knownConversations() {
            guard let view = engine.conversation(conversation) else { continue }
            effects += assistant.agent.handle(.conversation(SimAssistant.snapshot(view)), now: now)
        }
        carryOut(effects, for: assistant)
        let granted = engine.assistantGrant?.isActive ?? false
        if (granted && now < assistant.expiresAt) || assistant.agent.activeReplies > 0 {
            schedule(after: 700) { world in world.poll(assistant) }
        } else {
            assistant.polling = false
        }
    }

    /// The agent core's effects, through the same engine calls `cloak-agent` makes.
    private func carryOut(_ effects: [AgentEffect], for assistant: SimAssistant) {
        guard let engine = assistant.client.engine else { return }
        var queue = effects
        while !queue.isEmpty {
            switch queue.removeFirst() {
            case .beginReply(let id, let conversation, let parent):
                do {
                    let message = try engine.beginMessage(in: conversation, parent: parent, role: .assistant)
                    assistant.streaming[id] = message
                    assistant.replies[message] = SimAssistant.Reply(conversation: conversation)
                    assistant.replyOrder.append(message)
                    // Noted for the workload's edits and deletions (not for durability: the
                    // assistant is no device, and a revoked one's last words may be refused).
                    // Its parent too: a member's reply to it hangs on what it answers (§10).
                    notes.recordMessage(SimNotes.Message(
                        account: assistant.account, conversation: conversation, id: message, author: assistant.client.index,
                        createdAt: now, kind: "assistant reply", text: "",
                        parent: engine.message(message, in: conversation)?.parent))
                    notes.count("assistant reply")
                    queue += assistant.agent.handle(.replyStarted(id, message), now: now)
                } catch {
                    notes.count("assistant reply refused")
                    queue += assistant.agent.handle(.writeFailed(id, "begin refused"), now: now)
                }
            case .startModel(let id, _):
                scriptedModel(id, for: assistant)
            case .cancelModel:
                break  // the scripted model's remaining tokens find no reply and are ignored
            case .appendText(let id, let conversation, let message, let text):
                do {
                    try engine.streamText(text, into: message, in: conversation)
                    assistant.replies[message]?.text += text
                } catch {
                    queue += assistant.agent.handle(.writeFailed(id, "append refused"), now: now)
                }
            case .finishReply(let id, let conversation):
                try? engine.finishStreaming(in: conversation)
                if let message = assistant.streaming.removeValue(forKey: id) { assistant.replies[message]?.finished = true }
            case .log:
                break
            }
        }
        pump(assistant.client)
    }

    /// The scripted model: two to six tokens over virtual time (the first carries a canary),
    /// and now and then an error the agent turns into a sentence in the reply.
    private func scriptedModel(_ id: ReplyID, for assistant: SimAssistant) {
        let fails = assistantRandom.chance(0.05)
        var delay: UInt64 = 0
        for chunk in 0..<assistantRandom.within(2...6) {
            delay += UInt64(assistantRandom.within(20...200))
            let text = chunk == 0 ? canaryText("answer") : " part\(chunk)"
            schedule(after: delay) { world in world.feed(assistant, .modelToken(id, text)) }
        }
        schedule(after: delay + 10) { world in world.feed(assistant, fails ? .modelFailed(id, .modelError) : .modelFinished(id)) }
    }

    private func feed(_ assistant: SimAssistant, _ event: AgentEvent) {
        carryOut(assistant.agent.handle(event, now: now), for: assistant)
    }
}
