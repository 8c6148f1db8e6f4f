import CloakCrypto
import CloakProtocol
import CloakServer
import CloakSimulation
import Foundation
import Testing

/// What an outsider who knows only account ids learns from passphrase-recovery evaluations
/// (PROTOCOL.md §22, §25; ADV-46): nothing about which accounts use a passphrase.
@Suite struct RecoveryDecoyTests {
    static let blinded = "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"

    static func hardened(_ c: inout ServerConfiguration) {
        c.recoveryKeys = try? RecoveryKeySet(seeds: [1: SecretBytes(copying: [UInt8](repeating: 9, count: 32))], current: 1)
        c.recoveryFailuresBeforeLockout = 3
        c.maxRecoveryEvaluationsPerAddress = 100
        c.maxRecoveryFetchesPerWindow = 100
    }

    /// Registers `account` and, with `enrollment`, sets a recovery key and a passphrase blob.
    @discardableResult
    static func register(_ server: SynchronousServer, _ account: TestAccount, enrollment: [UInt8]?) -> CoreClient {
        var account = account
        let owner = CoreClient(server)
        owner.login(account, register: true)
        guard let enrollment else { return owner }
        let recovery = TestDevice(seed: 777)
        let entry = DeviceLogEntry.add(
            .setRecovery, signingKey: recovery.signing.publicKey, agreementKey: recovery.agreement.publicKey,
            after: account.log, signer: account.devices[0].signing, createdAtMs: 1)
        #expect(Self.isDone(owner.send(Frames.appendDeviceLog(entry, id: 2))))
        #expect(throws: Never.self) { try account.log.append(entry) }
        var put = Cloak_V1_PutRecovery()
        put.blob.accountID = Data(account.account.bytes)
        put.blob.recoveryKeyID = Data(recovery.id.bytes)
        put.blob.kdfParameters = Data(enrollment)
        #expect(Self.isDone(owner.send(FrameCodec.encode(.putRecovery(put), requestID: 3))))
        return owner
    }

    static func isDone(_ frames: [Cloak_V1_Frame]) -> Bool {
        frames.contains { if case .done = $0.body { true } else { false } }
    }

    static func evaluate(_ client: CoreClient, _ account: AccountID, id: UInt64) -> Cloak_V1_Frame? {
        var evaluate = Cloak_V1_RecoveryEvaluate()
        evaluate.accountID = Data(account.bytes)
        evaluate.blindedElement = Data((try? Hex.decode(blinded)) ?? [])
        return client.send(FrameCodec.encode(.recoveryEvaluate(evaluate), requestID: id)).first
    }

    /// An answer's shape: which body or error, the field sizes, the count; never the values.
    static func shape(_ frame: Cloak_V1_Frame?) -> String {
        switch frame?.body {
        case .recoveryEvaluation(let e)?:
            "evaluation element \(e.evaluatedElement.count) params \(e.kdfParameters.count) version \(e.keyVersion) "
                + "left \(e.attemptsLeft) bytes \(FrameCodec.encode(.recoveryEvaluation(e), requestID: 0).count)"
        case .error(let e)?: "error \(e.code) retry \(e.retryAfterMs > 0)"
        default: "other"
        }
    }

    @Test("ADV-46 an outsider sees the same answers for an account with a passphrase, one without, and none")
    func passphraseUseIsNotVisible() throws {
        let server = makeServer(Self.hardened)
        let enrolled = TestAccount.make(seed: 61)
        let withoutPassphrase = TestAccount.make(seed: 62)
        let unknown = TestAccount.make(seed: 63).account
        // A real enrollment uses the default cost, as every client does.
        let enrollment = RecoveryEnrollment(keyVersion: 1).encoded
        Self.register(server, enrolled, enrollment: enrollment)
        Self.register(server, withoutPassphrase, enrollment: nil)

        let outsider = CoreClient(server)
        var shapes: [[String]] = []
        var answers: [AccountID: [Cloak_V1_RecoveryEvaluation]] = [:]
        var id: UInt64 = 10
        for account in [enrolled.account, withoutPassphrase.account, unknown] {
            var row: [String] = []
            // Three counted guesses, then the lockout, alike for all three.
            for _ in 0..<4 {
                id += 1
                let reply = Self.evaluate(outsider, account, id: id)
                row.append(Self.shape(reply))
                if case .recoveryEvaluation(let e)? = reply?.body { answers[account, default: []].append(e) }
            }
            shapes.append(row)
        }
        #expect(shapes[0] == shapes[1] && shapes[1] == shapes[2], "\(shapes)")
        #expect(shapes[0].last?.hasPrefix("error \(Cloak_V1_ErrorCode.recoveryLocked)") == true)
        #expect(shapes[0].first?.contains("element 32 params 29 version 1 left 2") == true)
        // Consistent: the same account answers the same element and parameters every time.
        for (account, list) in answers {
            #expect(list.count == 3)
            #expect(Set(list.map(\.evaluatedElement)).count == 1 && Set(list.map(\.kdfParameters)).count == 1, "\(account)")
            #expect(throws: Never.self) { try RecoveryEnrollment(decoding: Array(list[0].kdfParameters)) }
        }
        // Yet different accounts differ (per-account keys and salts), as real ones do.
        let elements = Set(answers.values.compactMap { $0.first?.evaluatedElement })
        let parameters = Set(answers.values.compactMap { $0.first?.kdfParameters })
        #expect(elements.count == 3 && parameters.count == 3)
        // The enrolled account's answer carries its real parameters.
        #expect(answers[enrolled.account]?.first.map { Array($0.kdfParameters) } == enrollment)
        #expect(outsider.closedWith == nil)
    }

    @Test("ADV-46 a stand-in answers the same after a restart of the registry (derived, not stored)")
    func standInIsDerivedFromTheKey() {
        let store = InMemoryServerStore()
        let unknown = TestAccount.make(seed: 64).account
        let first = Self.evaluate(CoreClient(makeServer(Self.hardened, store: store)), unknown, id: 1)
        let second = Self.evaluate(CoreClient(makeServer(Self.hardened, store: store)), unknown, id: 1)
        guard case .recoveryEvaluation(let a)? = first?.body, case .recoveryEvaluation(let b)? = second?.body else {
            Issue.record("no evaluations")
            return
        }
        #expect(a.evaluatedElement == b.evaluatedElement && a.kdfParameters == b.kdfParameters)
        // Another server key gives another stand-in: it is the key's, not a constant.
        let other = makeServer {
            Self.hardened(&$0)
            $0.recoveryKeys = try? RecoveryKeySet(seeds: [1: SecretBytes(copying: [UInt8](repeating: 8, count: 32))], current: 1)
        }
        guard case .recoveryEvaluation(let c)? = Self.evaluate(CoreClient(other), unknown, id: 1)?.body else {
            Issue.record("no evaluation")
            return
        }
        #expect(c.kdfParameters != a.kdfParameters && c.evaluatedElement != a.evaluatedElement)
    }

    @Test("ADV-46 after a key rotation an old enrollment is evaluated under its version, new ones under the new")
    func rotationKeepsOldEnrollmentsWorking() throws {
        let seed1 = SecretBytes(copying: [UInt8](repeating: 9, count: 32))
        let seed2 = SecretBytes(copying: [UInt8](repeating: 10, count: 32))
        let store = InMemoryServerStore()
        let account = TestAccount.make(seed: 65)
        let before = makeServer(Self.hardened, store: store)
        let owner = Self.register(before, account, enrollment: RecoveryEnrollment(keyVersion: 1).encoded)
        guard case .recoveryEvaluation(let old)? = Self.evaluate(CoreClient(before), account.account, id: 1)?.body else {
            Issue.record("no evaluation before the rotation")
            return
        }
        before.disconnect(owner.id)
        let rotated = makeServer({
            Self.hardened(&$0)
            $0.recoveryKeys = try? RecoveryKeySet(seeds: [1: seed1, 2: seed2], current: 2)
        }, store: store)
        guard case .recoveryEvaluation(let after)? = Self.evaluate(CoreClient(rotated), account.account, id: 1)?.body else {
            Issue.record("no evaluation after the rotation")
            return
        }
        // The same answer: the user's passphrase still derives the same recovery key.
        #expect(after.keyVersion == 1 && after.evaluatedElement == old.evaluatedElement && after.kdfParameters == old.kdfParameters)
        // A device's new enrollment is evaluated under the new version.
        let device = CoreClient(rotated)
        device.login(account)
        guard case .recoveryEvaluation(let enrollment)? = Self.evaluate(device, account.account, id: 5)?.body else {
            Issue.record("no enrollment evaluation")
            return
        }
        #expect(enrollment.keyVersion == 2 && enrollment.evaluatedElement != old.evaluatedElement)
        // A server that dropped version 1 cannot evaluate the old enrollment: it says so.
        let retired = makeServer({
            Self.hardened(&$0)
            $0.recoveryKeys = try? RecoveryKeySet(seeds: [2: seed2], current: 2)
        }, store: store)
        #expect(Self.evaluate(CoreClient(retired), account.account, id: 1)?.errorCode == .recoveryUnavailable)
    }

    @Test("stand-in counts are bounded in memory: past the limit the account guessed at longest ago starts again")
    func standInCountsAreBounded() {
        let server = makeServer { Self.hardened(&$0); $0.maxRecoveryStandIns = 2 }
        let outsider = CoreClient(server)
        let (first, second, third) = (TestAccount.make(seed: 66).account, TestAccount.make(seed: 67).account, TestAccount.make(seed: 68).account)
        func left(_ account: AccountID, at nowMs: UInt64) -> UInt32? {
            var evaluate = Cloak_V1_RecoveryEvaluate()
            evaluate.accountID = Data(account.bytes)
            evaluate.blindedElement = Data((try? Hex.decode(Self.blinded)) ?? [])
            let reply = outsider.send(FrameCodec.encode(.recoveryEvaluate(evaluate), requestID: nowMs), nowMs: nowMs)
            if case .recoveryEvaluation(let e)? = reply.first?.body { return e.attemptsLeft }
            return nil
        }
        #expect(left(first, at: 10) == 2)
        #expect(left(first, at: 11) == 1)
        #expect(left(second, at: 12) == 2)
        #expect(left(first, at: 13) == 0)  // still remembered: two accounts fit
        #expect(left(third, at: 14) == 2)  // a third: the one guessed at longest ago (second) goes
        #expect(left(second, at: 15) == 2)  // forgotten, so it starts again; first went for it
        #expect(left(third, at: 16) == 1)
    }
}

