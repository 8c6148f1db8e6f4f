import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import Foundation
import Testing

/// A device offline while recovery passphrases were guessed still learns of the guesses, even
/// when a recovery then succeeded (PROTOCOL.md §22; ADV-46).
@Suite struct RecoveryNoticeTests {
    static func recoveryNotices(_ frames: [Cloak_V1_Frame]) -> [Cloak_V1_RecoveryStatus] {
        frames.compactMap { if case .accountNotice(let n) = $0.body, n.hasRecovery { n.recovery } else { nil } }
    }

    @Test("ADV-46 guesses before a successful recovery are told to a device that was offline, after a restart too")
    func offlineDeviceLearnsOfGuesses() {
        let server = makeServer { RecoveryDecoyTests.hardened(&$0); $0.recoveryFailuresBeforeLockout = 10 }
        let account = TestAccount.make(seed: 71)
        let owner = RecoveryDecoyTests.register(server, account, enrollment: RecoveryEnrollment(keyVersion: 1).encoded)
        // The account's only device goes offline.
        server.disconnect(owner.id)

        let guesser = CoreClient(server)
        for n in 0..<2 {
            guard case .recoveryEvaluation = RecoveryDecoyTests.evaluate(guesser, account.account, id: UInt64(n + 1))?.body else {
                Issue.record("no evaluation")
                return
            }
        }
        // The recovery key authenticates (the last guess was right): the count starts again.
        let recovered = CoreClient(server)
        let auth = recovered.send(
            Frames.authenticate(account: account.account, device: TestDevice(seed: 777), nonce: recovered.nonce), nowMs: 5_000)
        guard case .authResult = auth.first?.body else {
            Issue.record("the recovery key did not authenticate: \(auth)")
            return
        }
        server.restart()

        // The device comes back: it is told of the two guesses and the success, and again at the
        // next authentication (it acknowledges by remembering; the server keeps the notice).
        for _ in 0..<2 {
            let notices = Self.login(server, account)
            #expect(notices.count == 1)
            #expect(notices.first?.succeeded == true && notices.first?.consecutiveFailures == 2)
            #expect(notices.first?.atMs == 5_000)
        }
        // A newer guess is told after it; the notice of the success stays until a newer one.
        guard case .recoveryEvaluation = RecoveryDecoyTests.evaluate(CoreClient(server), account.account, id: 9)?.body else {
            Issue.record("no evaluation after the restart")
            return
        }
        let both = Self.login(server, account)
        #expect(both.map(\.succeeded) == [true, false] && both.map(\.consecutiveFailures) == [2, 1])
    }

    /// Authenticates the account's first device; the recovery notices that came with it.
    static func login(_ server: SynchronousServer, _ account: TestAccount) -> [Cloak_V1_RecoveryStatus] {
        let device = CoreClient(server)
        let frames = device.send(Frames.authenticate(account: account.account, device: account.devices[0], nonce: device.nonce))
        guard case .authResult = frames.first?.body else {
            Issue.record("no AuthResult: \(frames)")
            return []
        }
        return recoveryNotices(frames)
    }
}
