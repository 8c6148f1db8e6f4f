import CloakCRDT
@_spi(Simulation) @testable import CloakClient
import CloakCrypto
import CloakProtocol
import CloakServer
import CloakServerHTTP
import CloakTransport
import Foundation
import Testing

/// Issue 26 end to end over loopback: nothing joins without both users agreeing (ADV-48), and
/// passphrase recovery goes through the server's counted oblivious PRF, with a floor, a
/// lockout the devices are told about, and every new device announced (ADV-46).
@Suite("End to end: linking both sides agree to, OPRF-hardened recovery", .serialized)
struct RecoveryLinkEndToEndTests {
    /// A server holding a recovery key, locking passphrase recovery after three guesses.
    static var hardened: ServerConfiguration {
        var sync = ServerConfiguration()
        // A fixed seed is fine for a test server; an operator's comes from `recovery-keys generate`.
        sync.recoveryKeys = try? RecoveryKeySet(seeds: [1: SecretBytes(copying: [UInt8](repeating: 7, count: 32))], current: 1)
        sync.recoveryFailuresBeforeLockout = 3
        return sync
    }

    static let passphrase = "velvet orbit cactus harbor lantern mosaic"

    @Test("ADV-48 a no on either side adds nobody and the new device tries again; a yes on both is announced")
    func linkingNeedsBothSides() async throws {
        let root = try temporaryDirectory("link-both")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            await a.startSync()
            let b = try openClient(root.appendingPathComponent("b"), server)
            // The existing device says no: the new device is told, nothing is added.
            await #expect(throws: ClientError.linkDeclined) { try await link(b, to: a, newSays: true, existingSays: false) }
            #expect(try await a.devices().filter(\.isActive).count == 1)
            // The new device says no: the existing device is told, nothing is added.
            await #expect(throws: ClientError.linkDeclined) { try await link(b, to: a, newSays: false, existingSays: true) }
            #expect(try await a.devices().filter(\.isActive).count == 1)
            #expect(await b.accountID == nil)
            // The same directory tries again with a new invitation; both say yes.
            try await link(b, to: a)
            #expect(await b.accountID == a.accountID)
            try await eventually("the existing device announces the linked device") {
                try await a.recordedSecurityEvents().contains {
                    $0.kind == .deviceAdded && $0.device == b.deviceID && !$0.joinedByRecovery
                }
            }
            // A third device: every other device (a and b) announces it.
            await b.startSync()
            let c = try openClient(root.appendingPathComponent("c"), server)
            try await link(c, to: b)
            for other in [a, b] {
                try await eventually("every other device announces the third") {
                    try await other.recordedSecurityEvents().contains { $0.kind == .deviceAdded && $0.device == c.deviceID }
                }
            }
            #expect(try await a.devices().filter(\.isActive).count == 3)
            for client in [a, b, c] { try await client.close() }
        }
    }

    @Test("a new device that stops after taking the offer (single use) resumes it when reopened, and joins")
    func linkResumesAfterStop() async throws {
        let root = try temporaryDirectory("link-resume")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            await a.startSync()
            let directory = root.appendingPathComponent("b")
            let first = try openClient(directory, server)
            let invitation = try await first.beginLink()
            async let pending = first.awaitLink(invitation, pollMillis: 50)
            let offer = try await a.acceptLink(invitation.text)
            let shown = try await pending
            try await first.close()  // the process ends here; the offer mailbox is empty now
            let again = try openClient(directory, server)
            let resumed = try await again.awaitLink(invitation, pollMillis: 50)
            #expect(resumed.shortAuthenticationString == shown.shortAuthenticationString)
            #expect(resumed.shortAuthenticationString == offer.shortAuthenticationString)
            async let joined: Void = again.confirmLink(resumed, codesMatch: true, pollMillis: 50)
            try await a.completeLink(offer, codesMatch: true, pollMillis: 50)
            try await joined
            #expect(await again.accountID == a.accountID)
            #expect(try await a.devices().filter(\.isActive).count == 2)
            try await a.close()
            try await again.close()
        }
    }

    @Test("an existing device stopped after both users said yes finishes the link when reopened")
    func acceptanceResumesAfterStop() async throws {
        let root = try temporaryDirectory("accept-resume")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            // The existing device's process dies right after it read the new device's yes:
            // nothing the server sends after that answer reaches it.
            let cut = Flag()
            let directory = root.appendingPathComponent("a")
            let dying = try CloakClient.open(
                directory: directory, server: URL(string: server.syncURL)!,
                transport: TamperingTransport(inner: WebSocketTransport()) { frame in
                    if cut.isOn { return [] }
                    if case .mailboxContent(let content) = frame.body, !content.payload.isEmpty { cut.set(true) }
                    return [frame]
                },
                configuration: fastConfiguration)
            try await dying.createAccount()
            let b = try openClient(root.appendingPathComponent("b"), server)
            let invitation = try await b.beginLink()
            async let pending = b.awaitLink(invitation, pollMillis: 50)
            let offer = try await dying.acceptLink(invitation.text)
            let link = try await pending
            let joining = Task { try await b.confirmLink(link, codesMatch: true, pollMillis: 50) }
            let committing = Task { try await dying.completeLink(offer, codesMatch: true, pollMillis: 50) }
            try await eventually("the existing device read the yes") { cut.isOn }
            // The frame passed the transport; the device stores the agreed acceptance when it
            // processes it. Dying before that leaves nothing to resume (a test race under load).
            try await eventually("the existing device stored the acceptance") { await dying._hasPendingAcceptance() }
            committing.cancel()
            try? await dying.close()
            let reopened = try openClient(directory, server)
            await reopened.startSync()  // resumes the acceptance both users agreed to
            try await eventually("the new device joins (bounded: without the resume it would wait for ever)") {
                await b.accountID != nil
            }
            try await joining.value
            #expect(await b.accountID == reopened.accountID)
            #expect(try await reopened.devices().filter(\.isActive).count == 2)
            try await reopened.close()
            try await b.close()
        }
    }

    @Test("ADV-46 passphrase recovery: weak refused, guesses counted and told, lockout and reset, recovery announced")
    func passphraseRecovery() async throws {
        let root = try temporaryDirectory("recover-oprf")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer(sync: Self.hardened) { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            await a.startSync()
            let chat = try await a.createConversation(title: "pass")
            try await a.appendMessage(to: chat, role: .user, text: "kept")
            // The floor: empty, a common password and a short phrase are refused with an estimate.
            for weak in ["", "letmein", "correct horse battery"] {
                do {
                    try await a.setUpRecoveryPassphrase(weak)
                    Issue.record("the weak passphrase \"\(weak)\" was accepted")
                } catch {
                    guard case .weakPassphrase(let strength) = error as? ClientError else { throw error }
                    #expect(!strength.isAcceptable && strength.bits < PassphraseStrength.minimumBits)
                }
            }
            #expect(CloakClient.passphraseStrength(Self.passphrase).isAcceptable)
            try await a.setUpRecoveryPassphrase(Self.passphrase)
            #expect(await a.waitUntilSynced())
            let account = try #require(await a.accountID)
            // Replacing it must be asked for.
            await #expect(throws: ClientError.recoveryAlreadySet) { try await a.setUpRecoveryPassphrase(Self.passphrase + " again") }

            // Three wrong guesses: each needs the server, each is counted, the device is told.
            for n in 0..<3 {
                let guesser = try openClient(root.appendingPathComponent("guess-\(n)"), server)
                await #expect(throws: ClientError.wrongRecoverySecret) {
                    try await guesser.recover(account: account, passphrase: "letmein \(n)")
                }
                try await guesser.close()
            }
            try await eventually("the device is told of the guesses and the lockout") {
                let kinds = try await a.recordedSecurityEvents().map(\.kind)
                return kinds.contains(.recoveryAttempt) && kinds.contains(.recoveryLocked)
            }
            // Locked: even the right passphrase gets no evaluation.
            let locked = try openClient(root.appendingPathComponent("locked"), server)
            do {
                try await locked.recover(account: account, passphrase: Self.passphrase)
                Issue.record("a locked recovery answered")
            } catch {
                guard case .recoveryLocked(let after) = error as? ClientError else { throw error }
                #expect(after > 0)
            }
            try await locked.close()

            // The device's user ends the lockout; the right passphrase then restores everything.
            try await a.resetRecoveryLockout()
            let fresh = try openClient(root.appendingPathComponent("fresh"), server)
            // Typed with stray spaces: the same passphrase after normalisation (§22).
            try await fresh.recover(account: account, passphrase: "  " + Self.passphrase.replacingOccurrences(of: " ", with: "  ") + " ")
            await fresh.startSync()
            try await eventually("history restored") { await fresh.conversation(chat)?.messages.count == 1 }
            try await eventually("the other device announces the recovered one, marked as a recovery") {
                try await a.recordedSecurityEvents().contains {
                    $0.kind == .deviceAdded && $0.device == fresh.deviceID && $0.joinedByRecovery
                }
            }
            try await a.close()
            try await fresh.close()
        }
    }

    @Test("replacing recovery words must be asked for; the old words then recover nothing, the new ones everything")
    func replacingWords() async throws {
        let root = try temporaryDirectory("recover-replace")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            await a.startSync()
            let chat = try await a.createConversation(title: "replace")
            try await a.appendMessage(to: chat, role: .user, text: "before")
            let old = try await a.setUpRecoveryWords()
            await #expect(throws: ClientError.recoveryAlreadySet) { _ = try await a.setUpRecoveryWords() }
            let new = try await a.setUpRecoveryWords(replacing: true)
            #expect(new != old)
            try await a.appendMessage(to: chat, role: .user, text: "after the replacement")
            #expect(await a.waitUntilSynced())
            let stale = try openClient(root.appendingPathComponent("stale"), server)
            await #expect(throws: ClientError.wrongRecoverySecret) { try await stale.recover(words: old) }
            #expect(await stale.accountID == nil)
            let fresh = try openClient(root.appendingPathComponent("fresh"), server)
            try await fresh.recover(words: new)
            await fresh.startSync()
            try await eventually("the new words restore everything, the replacement's epoch included") {
                await fresh.conversation(chat)?.messages.map(\.text) == ["before", "after the replacement"]
            }
            for client in [a, stale, fresh] { try await client.close() }
        }
    }

    @Test("a recovery cut off right after its add entry landed resumes without the secret when reopened")
    func recoveryResumesAfterStop() async throws {
        let root = try temporaryDirectory("recover-resume")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            await a.startSync()
            let chat = try await a.createConversation(title: "resume")
            try await a.appendMessage(to: chat, role: .user, text: "kept")
            let words = try await a.setUpRecoveryWords()
            #expect(await a.waitUntilSynced())
            // The recovering process dies after its add entry was appended: nothing after the
            // envelopes it fetched reaches it (the append's Done and everything later is lost).
            let cut = Flag()
            let directory = root.appendingPathComponent("fresh")
            let dying = try CloakClient.open(
                directory: directory, server: URL(string: server.syncURL)!,
                transport: TamperingTransport(inner: WebSocketTransport()) { frame in
                    if cut.isOn { return [] }
                    if case .keyEnvelopes = frame.body { cut.set(true) }
                    return [frame]
                },
                configuration: fastConfiguration)
            let attempt = Task { try await dying.recover(words: words) }
            try await eventually("the add entry landed") { try await a.devices().filter(\.isActive).count == 2 }
            attempt.cancel()
            try? await dying.close()
            let reopened = try openClient(directory, server)
            #expect(await reopened.hasInterruptedRecovery)
            try await reopened.resumeRecovery()
            #expect(await reopened.accountID == a.accountID)
            await reopened.startSync()
            try await eventually("the resumed device reads the history") { await reopened.conversation(chat)?.messages.count == 1 }
            try await a.close()
            try await reopened.close()
        }
    }

    @Test("a server without a recovery key refuses passphrase enrollment with a clear error; words still work")
    func noRecoveryKey() async throws {
        let root = try temporaryDirectory("recover-nokey")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            await a.startSync()
            await #expect(throws: ClientError.recoveryUnavailable) { try await a.setUpRecoveryPassphrase(Self.passphrase) }
            let words = try await a.setUpRecoveryWords()
            #expect(words.split(separator: " ").count == 12)
            try await a.close()
        }
    }
}

extension CloakClient {
    /// Whether an agreed link acceptance is stored, waiting to be committed.
    func _hasPendingAcceptance() -> Bool { engine.hasPendingAcceptance }
}
