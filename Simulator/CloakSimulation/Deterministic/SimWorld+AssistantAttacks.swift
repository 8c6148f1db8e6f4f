@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol

// A hostile assistant and a server that colludes with it (ADV-49): a modified assistant client
// writes outside its scope (with a leaked key), as role `user`, and after its expiry; the server
// hands each change set to every device of the account. Every device must refuse each with the
// assistant's alarm, and show none of it.
extension SimWorld {
    /// Schedules the attacks: two while the grant lasts, one after its expiry.
    func scheduleAttacks(_ assistant: SimAssistant) {
        let soon = UInt64(assistantRandom.within(300...2_000))
        schedule(after: soon) { world in world.attack(assistant, .asUser) }
        schedule(after: soon + 100) { world in world.attack(assistant, .outOfScope) }
        let late = assistant.expiresAt > now ? assistant.expiresAt - now : 0
        schedule(after: late + UInt64(assistantRandom.within(200...2_000))) { world in world.attack(assistant, .afterExpiry) }
    }

    /// One attack. The assistant's client goes offline first (what it writes reaches devices
    /// only through the colluding server) and writes each attack in a chain of its own, so no
    /// refused change set leaves a gap in front of the next.
    func attack(_ assistant: SimAssistant, _ attack: SimAssistant.Attack) {
        let receivers = members(of: assistant.account).filter { $0.engine != nil }
        guard let engine = assistant.client.engine, let accomplice = receivers.first?.engine else { return }
        // Within the grant's lifetime, well before devices end it (then the refusal would be
        // for writing past its cut-off: right, but not this check's alarm).
        if attack != .afterExpiry, now + 3_000 > assistant.expiresAt {
            return notes.count("hostile assistant \(attack.rawValue) too late")
        }
        if assistant.client.online {
            assistant.client.online = false
            engine.stopSync()
            pump(assistant.client)
        }
        let target: ConversationID
        do {
            switch attack {
            case .asUser:
                target = assistant.scope[0]
                try engine.playHostileAssistant(keysFrom: nil, conversations: [])
            case .afterExpiry:
                // A chain of its own: the other scope conversation (none: nothing to try).
                guard assistant.scope.count > 1 else { return notes.count("hostile assistant after expiry skipped") }
                target = assistant.scope[1]
                try engine.playHostileAssistant(keysFrom: nil, conversations: [])
            case .outOfScope:
                guard let outside = accomplice.conversations().map(\.id).first(where: { !assistant.everScope.contains($0) })
                else { return notes.count("hostile assistant out of scope skipped") }
                target = outside
                try engine.playHostileAssistant(keysFrom: accomplice, conversations: [outside])
                // The colluding server serves it that conversation's history.
                let history = try accomplice.storedChangeSetWires().filter {
                    (try? ChangeSet(wire: $0))?.header.conversation == outside
                }
                try engine.deliver(history.map { (cursor: 0, wire: $0) })
            }
            let role: MessageRole = attack == .asUser ? .user : .assistant
            let message = try engine.appendMessage(to: target, role: role, text: canaryText("hostile assistant"))
            let wires = try engine.takeOutbox()
            // Offline, it missed a new epoch's key: it cannot seal, so there is nothing to hand out.
            guard !wires.isEmpty else { return notes.count("hostile assistant \(attack.rawValue) unsealable") }
            var held: Set<Int> = []
            for device in receivers {
                guard let receiver = device.engine else { continue }
                let before = receiver.heldChangeSets
                _ = try? receiver.deliver(wires.map { (cursor: 0, wire: $0) })
                if receiver.heldChangeSets > before { held.insert(device.index) }
                pump(device)
            }
            assistant.hostileWrites.append(SimAssistant.HostileWrite(
                attack: attack, conversation: target, message: message, receivers: receivers.map(\.index), held: held))
            fault("hostile assistant \(attack.rawValue)")
        } catch {
            notes.count("hostile assistant \(attack.rawValue) refused")
        }
        pump(assistant.client)
    }

    /// Every device that processed a hostile assistant's change set raised its alarm and shows
    /// nothing of it (a device since removed, forked by a restore or down is left out).
    func checkHostileAssistants() {
        for assistant in assistants where assistant.hostile {
            for write in assistant.hostileWrites {
                for index in write.receivers {
                    let device = devices[index]
                    guard device.status == .member, let engine = device.engine else { continue }
                    if engine.message(write.message, in: write.conversation) != nil {
                        notes.fail("assistant scope", "\(device.name) shows what a hostile assistant wrote \(write.attack.rawValue)")
                    }
                    // A device that held it (it lacked the grant's log entry) judges it once the log
                    // arrives: by then the grant may have ended, and the cut-off refuses it first.
                    let alarms = write.attack.alarms.union(write.held.contains(index) ? [.beyondRemovalCutoff, .authorNotActive] : [])
                    if device.events.contains(where: { $0.device == assistant.id && alarms.contains($0.kind) }) {
                        notes.detections["assistant \(write.attack.rawValue)", default: 0] += 1
                    } else {
                        let raised = device.events.filter { $0.device == assistant.id }.map(\.kind)
                        notes.fail("assistant scope", "\(device.name) raised no alarm for a hostile assistant's change set written "
                            + "\(write.attack.rawValue) (held first: \(write.held.contains(index)); its events about that assistant: \(raised))")
                    }
                }
            }
        }
    }
}
