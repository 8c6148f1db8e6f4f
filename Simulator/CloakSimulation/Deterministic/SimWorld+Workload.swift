@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol

extension SimWorld {
    /// Spreads each account's operations over the workload window.
    func scheduleWorkload() {
        for account in 0..<options.accounts {
            for _ in 0..<options.ops {
                schedule(after: UInt64(rng.below(Int(options.workloadMillis)))) { world in world.randomOperation(account) }
            }
        }
    }

    /// A canary-carrying text: every message's plaintext contains one, and no byte the server
    /// sees or stores may (ADV-15).
    func canaryText(_ prefix: String) -> String {
        let canary = "cloak-canary-\(options.seed)-\(notes.canaries.count)"
        notes.canaries.append(canary)
        return "\(prefix) \(canary)"
    }

    /// One operation on a random member device of `account` (offline devices edit too).
    func randomOperation(_ account: Int) {
        let candidates = members(of: account)
        guard !candidates.isEmpty else { return }
        let device = rng.pick(candidates)
        guard let engine = device.engine else { return }
        let roll = rng.below(100)
        let conversations = engine.conversations().map(\.id)
        if conversations.isEmpty || roll < 6 {
            return perform("create conversation", device) {
                _ = try engine.createConversation(title: canaryText("title"))
            }
        }
        let conversation = rng.pick(conversations)
        let path = engine.conversation(conversation)?.messages.filter { !$0.isDeleted }.map(\.id) ?? []
        switch roll {
        case ..<45:
            perform("append", device) {
                let text = canaryText("message")
                let id = try engine.appendMessage(to: conversation, role: rng.chance(0.5) ? .user : .assistant, text: text)
                record(id, text, in: conversation, by: device)
            }
        case ..<55:
            streamReply(in: conversation, on: device, parent: path.last)
        case ..<62 where !path.isEmpty:
            let target = rng.pick(path)
            perform("edit", device) {
                let length = engine.message(target, in: conversation)?.text.unicodeScalars.count ?? 0
                try engine.editText(
                    in: conversation, message: target, range: 0..<min(length, 3), replacement: canaryText("edit"))
                notes.messages[target]?.edited = true
            }
        case ..<66 where !path.isEmpty:
            let target = rng.pick(path)
            perform("delete", device) {
                try engine.deleteMessage(target, in: conversation)
                notes.messages[target]?.deleted = true
            }
        case ..<72 where !path.isEmpty:
            let target = rng.pick(path)
            perform("branch", device) {
                let text = canaryText("branch")
                let id = try engine.branch(from: target, in: conversation, role: .user, text: text)
                record(id, text, in: conversation, by: device, kind: "branch")
            }
        case ..<78 where !path.isEmpty:
            let target = rng.pick(path)
            perform("react", device) { try engine.react(rng.pick(["👍", "🎉", "❤️"]), to: target, in: conversation) }
        case ..<82:
            perform("rename", device) { try engine.rename(conversation, to: canaryText("rename")) }
        case ..<84:
            perform("archive", device) { try engine.archive(conversation, rng.chance(0.5)) }
        case ..<88:
            perform("mark read", device) { try engine.markRead(conversation) }
        case ..<90 where !path.isEmpty:
            perform("select branch", device) { try engine.selectBranch(rng.pick(path), in: conversation) }
        case ..<95:
            toggleOnline(device)
        case ..<97:
            lifecycleOperation(account, device)
        default:
            perform("append", device) {
                let text = canaryText("message")
                record(try engine.appendMessage(to: conversation, role: .user, text: text), text, in: conversation, by: device)
            }
        }
    }

    /// Runs one API call on `device`; a refusal is fine (the device may lack the conversation
    /// yet), but a storage failure the simulator did not plant is not.
    func perform(_ name: String, _ device: SimDevice, _ body: () throws -> Void) {
        do {
            try body()
            notes.count(name)
        } catch {
            notes.count("\(name) refused")
        }
        pump(device)
    }

    func record(_ id: MessageID, _ text: String, in conversation: ConversationID, by device: SimDevice, kind: String = "append") {
        var message = SimNotes.Message(
            account: device.account, conversation: conversation, id: id, author: device.index, createdAt: now, text: text)
        message.kind = kind
        message.parent = device.engine?.message(id, in: conversation)?.parent
        notes.recordMessage(message)
        noteCreated(message)
    }

    /// An assistant reply streamed chunk by chunk over virtual time, then finished.
    func streamReply(in conversation: ConversationID, on device: SimDevice, parent: MessageID?) {
        guard let engine = device.engine else { return }
        let id: MessageID
        do { id = try engine.beginMessage(in: conversation, parent: parent, role: .assistant) } catch {
            return notes.count("stream refused")
        }
        notes.count("stream")
        record(id, "", in: conversation, by: device, kind: "stream")
        pump(device)
        let engineAtStart = ObjectIdentifier(engine)
        var delay: UInt64 = 0
        for chunk in 0..<rng.within(3...12) {
            delay += UInt64(rng.within(10...60))
            let text = chunk == 0 ? canaryText("token") : " tok\(chunk)"
            schedule(after: delay) { world in
                // After a crash the app's stream is gone: what it had streamed stays.
                guard let engine = device.engine, ObjectIdentifier(engine) == engineAtStart else { return }
                do {
                    try engine.streamText(text, into: id, in: conversation)
                    world.notes.messages[id]?.text += text
                } catch {}
                world.pump(device)
            }
        }
        schedule(after: delay + 5) { world in
            guard let engine = device.engine, ObjectIdentifier(engine) == engineAtStart else { return }
            try? engine.finishStreaming(in: conversation)
            world.pump(device)
        }
    }

    func toggleOnline(_ device: SimDevice) {
        guard let engine = device.engine else { return }
        device.online.toggle()
        if device.online { engine.startSync() } else { engine.stopSync() }
        notes.count(device.online ? "online" : "offline")
        pump(device)
    }

    /// Links, removes or recovers a device (each needs the server).
    func lifecycleOperation(_ account: Int, _ device: SimDevice) {
        let accountMembers = devices.filter { $0.account == account && $0.status == .member }
        switch rng.below(3) {
        case 0 where accountMembers.count < 5:
            notes.count("link")
            link(addDevice(account: account), via: device) { _ in }
        case 1 where accountMembers.count > 2:
            let target = rng.pick(accountMembers.filter { $0 !== device })
            notes.count("remove")
            device.flow({ $0.removeDevice(target.engine?.deviceID ?? .zero) }) { [unowned self] result in
                guard case .success = result else { return notes.flowFailed("remove", device.name, result) }
                target.status = .removed
                target.removedAt = now
                notes.removed += 1
            }
            pump(device)
        default:
            recover(account, via: device)
        }
    }

    /// Sets up recovery words on `device`, then restores the account on a fresh device.
    func recover(_ account: Int, via device: SimDevice) {
        guard let engine = device.engine, devices.filter({ $0.account == account && $0.status == .member }).count < 5
        else { return }
        notes.count("recovery setup")
        // A second recovery of the same account replaces the words (a new key epoch).
        guard case let (words, flow)? = try? engine.setUpRecoveryWords(replacing: true) else {
            return notes.count("recovery setup refused")
        }
        device.flowCallbacks[flow] = { [unowned self] result in
            guard case .success = result else { return notes.flowFailed("recovery setup", device.name, result) }
            let fresh = addDevice(account: account)
            fresh.flow({ try $0.recover(words: words) }) { [unowned self] result in
                guard case .success = result else { return notes.flowFailed("recover", fresh.name, result) }
                fresh.status = .member
                notes.recovered += 1
                if fresh.online { fresh.engine?.startSync() }
                pump(fresh)
            }
            pump(fresh)
        }
        pump(device)
    }
}
