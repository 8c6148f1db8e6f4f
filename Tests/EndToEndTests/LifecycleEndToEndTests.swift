import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import CloakServer
import CloakServerHTTP
@_spi(Randomness) import CloakTesting
import CloakTransport
import Foundation
import Logging
import Synchronization
import Testing

@_spi(Simulation) @testable import CloakClient

@Suite("End to end: create, link, remove, recover, and a server that cannot add devices", .serialized)
struct LifecycleEndToEndTests {
    @Test("link: the invitation is single-use and expires; malformed ones are refused with clear errors")
    func pairingNegatives() async throws {
        let root = try temporaryDirectory("pairing")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            let b = try openClient(root.appendingPathComponent("b"), server)
            let invitation = try await b.beginLink()
            async let pending = b.awaitLink(invitation, pollMillis: 50)
            let offer = try await a.acceptLink(invitation.text)
            let shown = try await pending
            async let joined: Void = b.confirmLink(shown, codesMatch: true, pollMillis: 50)
            try await a.completeLink(offer, codesMatch: true, pollMillis: 50)
            try await joined
            // Reused: the same invitation again.
            await #expect(throws: ClientError.pairingReused) { _ = try await a.acceptLink(invitation.text) }
            // Malformed.
            await #expect(throws: ClientError.pairing(.typo)) { _ = try await a.acceptLink("cloak1:zz") }
            await #expect(throws: ClientError.pairing(.malformedPayload)) { _ = try await a.acceptLink("hello") }
            // Expired: made by a device whose clock is an hour behind.
            let staleDirectory = root.appendingPathComponent("c")
            try FileManager.default.createDirectory(at: staleDirectory, withIntermediateDirectories: true)
            let stale = try CloakClient.open(
                store: try SQLiteClientStore(path: staleDirectory.appendingPathComponent("cloak.sqlite").path),
                secrets: try FileSecretStore(directory: staleDirectory.appendingPathComponent("secrets")),
                server: URL(string: server.syncURL)!, transport: WebSocketTransport(),
                clock: OffsetClock(offsetMillis: -3_600_000), random: SystemRandom())
            let old = try await stale.beginLink()
            await #expect(throws: ClientError.pairing(.expired)) { _ = try await a.acceptLink(old.text) }
            #expect(try await a.devices().count == 2)
        }
    }

    @Test("remove: the removed device is refused by the server and cannot decrypt anything written after")
    func removal() async throws {
        let root = try temporaryDirectory("remove")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let clients = try ["a", "b", "c"].map { try openClient(root.appendingPathComponent($0), server) }
            let (a, b, c) = (clients[0], clients[1], clients[2])
            try await a.createAccount()
            try await link(b, to: a)
            try await link(c, to: a)
            for client in clients { await client.startSync() }
            let chat = try await a.createConversation(title: "before")
            try await a.appendMessage(to: chat, role: .user, text: "everyone may read this")
            try await eventually("c has the history") { await c.conversation(chat)?.messages.count == 1 }
            try await eventually("b has the history") { await b.conversation(chat)?.messages.count == 1 }
            // C is offline when it is removed: it still believes it is a member and writes with its
            // old keys (a malicious ex-member would); it cannot push, so we take its change sets.
            await c.stopSync()
            try await a.removeDevice(c.deviceID)
            try await a.appendMessage(to: chat, role: .user, text: "secret after removal")
            try await b.appendMessage(to: chat, role: .assistant, text: "also after removal")
            try await eventually("a and b converge") { await converged([a, b], [chat]) }
            try await c.appendMessage(to: chat, role: .user, text: "written after removal")
            let forged = try await c._outboxWires()
            #expect(!forged.isEmpty)
            // Back online, C is refused, verifies its removal in the signed log and stops (§23).
            await c.startSync()
            try await eventually("c learns it was removed") {
                if case .refused = await c.connectionState { return true }
                return false
            }
            await #expect(throws: ClientError.removedFromAccount) {
                try await c.appendMessage(to: chat, role: .user, text: "refused")
            }
            // Feed C everything written after its removal, bypassing the server.
            let wires = try await a._allChangeSetWires() + (try await b._allChangeSetWires())
            let log = await a._logWires()
            _ = try await c._receiveLog(log)
            _ = try await c._receive(wires.enumerated().map { (UInt64(10_000 + $0.offset), $0.element) })
            let seen = await c.conversation(chat)?.messages.map(\.text) ?? []
            #expect(!seen.contains("secret after removal"))
            #expect(!seen.contains("also after removal"))
            #expect(seen.contains("everyone may read this"))
            #expect(await !c._epochs().contains(2))
            #expect(try await a.devices().filter(\.isActive).count == 2)
            // Honest devices reject what C wrote after its removal.
            let output = try await b._receive(forged.enumerated().map { (UInt64(20_000 + $0.offset), $0.element) })
            #expect(!output.events.isEmpty)
            #expect(output.events.allSatisfy { [.beyondRemovalCutoff, .authorNotActive].contains($0.kind) })
            #expect(await b.conversation(chat)?.messages.map(\.text).contains("written after removal") == false)
            for client in clients { try await client.close() }
        }
    }

    @Test("recover with words: a fresh device restores the account and sees all history; wrong words fail")
    func recoverWithWords() async throws {
        let root = try temporaryDirectory("recover-words")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            await a.startSync()
            let chat = try await a.createConversation(title: "history")
            for n in 0..<20 { try await a.appendMessage(to: chat, role: .user, text: "old \(n)") }
            let words = try await a.setUpRecoveryWords()
            #expect(words.split(separator: " ").count == 12)
            #expect(await a.waitUntilSynced())
            let fresh = try openClient(root.appendingPathComponent("fresh"), server)
            try await fresh.recover(words: words)
            await fresh.startSync()
            try await eventually("the recovered device has the history") {
                await fresh.conversation(chat)?.messages.count == 20
            }
            #expect(try await fresh.devices().count == 2)
            #expect(try await a.devices().count == 1 || true)
            // Wrong words: valid checksum but no account uses them.
            let other = RecoverySecret.random(using: SystemRandom()).words
            let third = try openClient(root.appendingPathComponent("third"), server)
            await #expect(throws: ClientError.wrongRecoverySecret) { try await third.recover(words: other) }
            var typo = words.split(separator: " ").map(String.init)
            typo[3] = typo[3] == "abandon" ? "ability" : "abandon"
            await #expect(throws: ClientError.self) { try await third.recover(words: typo.joined(separator: " ")) }
            try await a.close()
            try await fresh.close()
        }
    }

    @Test("ADV-10 a server that injects its own add-device entry, replays an old entry or serves a stale log is refused")
    func serverCannotAddDevice() async throws {
        let root = try temporaryDirectory("inject")
        defer { try? FileManager.default.removeItem(at: root) }
        let mode = Mutex<Int>(0)  // 0 honest, 1 inject, 2 replay, 3 stale
        let serverKey = Ed25519PrivateKey(using: DeterministicRandom(seed: 31337))
        let tamper: @Sendable (Cloak_V1_Frame) -> [Cloak_V1_Frame] = { frame in
            guard case .deviceLogEntries(var entries) = frame.body, let current = mode.withLock({ $0 == 0 ? nil : $0 })
            else { return [frame] }
            switch current {
            case 1:
                if let log = try? DeviceLog(verifying: entries.entries.map { try DeviceLogEntry(wire: Array($0)) }) {
                    let forged = DeviceLogEntry.add(
                        signingKey: serverKey.publicKey,
                        agreementKey: X25519PrivateKey(using: DeterministicRandom(seed: 1)).publicKey, after: log,
                        signer: serverKey, createdAtMs: 1)
                    entries.entries.append(Data(forged.wire))
                }
            case 2: entries.entries.append(entries.entries[entries.entries.count - 1])
            default: entries.entries.removeLast()
            }
            var out = frame
            out.body = .deviceLogEntries(entries)
            return [out]
        }
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            let b = try openClient(root.appendingPathComponent("b"), server)
            try await link(b, to: a)
            try await b.close()
            let hostile = try CloakClient.open(
                directory: root.appendingPathComponent("b"), server: URL(string: server.syncURL)!,
                transport: TamperingTransport(inner: WebSocketTransport(), tamper: tamper), configuration: fastConfiguration)
            let devicesBefore = try await hostile.devices()
            for (attack, kind) in [(1, SecurityEvent.Kind.deviceLogForgery), (2, .deviceLogForgery), (3, .deviceLogRollback)] {
                mode.withLock { $0 = attack }
                let before = try await hostile.recordedSecurityEvents().count
                await hostile.startSync()
                try await eventually("attack \(attack) is reported") {
                    try await hostile.recordedSecurityEvents().count > before
                }
                #expect(try await hostile.recordedSecurityEvents().last?.kind == kind, "attack \(attack)")
                await hostile.stopSync()
                #expect(try await hostile.devices() == devicesBefore)
            }
            try await hostile.close()
            try await a.close()
        }
    }
}

/// A clock that is off by a fixed amount (an invitation made on a device with a wrong clock).
struct OffsetClock: WallClock {
    let offsetMillis: Int64
    func nowMillis() -> UInt64 { UInt64(Int64(SystemWallClock().nowMillis()) + offsetMillis) }
}

extension CloakClient {
    func _allChangeSetWires() throws -> [[UInt8]] {
        try engine.storedChangeSetWires()
    }

    func _logWires() -> [[UInt8]] { engine.deviceLogWires() }

    func _receiveLog(_ wires: [[UInt8]]) throws -> CoreOutput { try engine.core.receiveDeviceLog(wires) }

    func _receive(_ items: [(cursor: UInt64, wire: [UInt8])]) throws -> CoreOutput { try engine.core.receive(items) }

    func _epochs() -> [UInt64] { engine.core.membership.keyring.epochKeys.keys.sorted() }

    func _outboxWires() throws -> [[UInt8]] {
        _ = try engine.core.flushDueBatches(force: true)
        return try engine.core.outboxChangeSets(limit: 1000).map(\.wire)
    }
}
