@_spi(Simulation) @testable import CloakClient
import CloakProtocol
import Foundation
import Testing

/// A device that was offline while someone guessed the recovery passphrase and then recovered
/// learns of the guesses when it connects: the server keeps the notice (PROTOCOL.md §22; ADV-46).
@Suite("End to end: guesses before a recovery reach a device that was offline", .serialized)
struct RecoveryNoticeEndToEndTests {
    @Test("ADV-46 an offline device connects after guesses and a successful recovery, and is told of both")
    func offlineDeviceIsTold() async throws {
        let root = try temporaryDirectory("recover-notice")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer(sync: RecoveryLinkEndToEndTests.hardened) { server in
            var a = try openClient(root.appendingPathComponent("a"), server)
            try await a.createAccount()
            await a.startSync()
            try await a.setUpRecoveryPassphrase(RecoveryLinkEndToEndTests.passphrase)
            #expect(await a.waitUntilSynced())
            let account = try #require(await a.accountID)
            try await a.close()

            // While A is offline: two wrong guesses, then the right passphrase (counted too: 3).
            for n in 0..<2 {
                let guesser = try openClient(root.appendingPathComponent("guess-\(n)"), server)
                await #expect(throws: ClientError.wrongRecoverySecret) {
                    try await guesser.recover(account: account, passphrase: "letmein \(n)")
                }
                try await guesser.close()
            }
            let thief = try openClient(root.appendingPathComponent("thief"), server)
            try await thief.recover(account: account, passphrase: RecoveryLinkEndToEndTests.passphrase)
            try await thief.close()

            a = try openClient(root.appendingPathComponent("a"), server)
            await a.startSync()
            try await eventually("A is told of the guesses before the recovery, and of the recovered device") {
                let events = try await a.recordedSecurityEvents()
                let told = events.contains { $0.kind == .recoveryAttempt && $0.detail.contains("succeeded") && $0.detail.contains("after 3 counted recovery-passphrase evaluations") }
                return told && events.contains { $0.kind == .deviceAdded && $0.joinedByRecovery }
            }
            // Told once: reconnecting delivers the notice again, and the device does not repeat it.
            try await a.close()
            a = try openClient(root.appendingPathComponent("a"), server)
            await a.startSync()
            #expect(await a.waitUntilSynced())
            let again = try await a.recordedSecurityEvents().filter { $0.kind == .recoveryAttempt && $0.detail.contains("succeeded") }
            #expect(again.count == 1)
            try await a.close()
        }
    }
}
