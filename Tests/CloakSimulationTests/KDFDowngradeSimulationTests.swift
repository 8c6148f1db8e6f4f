import CloakSimulation
import Testing

/// The hostile server weakens the Argon2id parameters it serves a device recovering with a
/// passphrase (issue 24's "downgrade KDF parameters"); the device refuses with the floor's
/// error and recovers nothing (ADV-25).
@Suite("Deterministic simulation: KDF downgrade (ADV-25)")
struct KDFDowngradeSimulationTests {
    @Test("ADV-25 a passphrase recovery served parameters below the floors is refused, in every run that tries it")
    func downgradeIsRefused() {
        var detected = 0
        var attempted = 0
        for seed in UInt64(30)..<33 {
            let options = SimOptions(seed: seed, accounts: 2, devices: 2, ops: 40, faults: .hostile, assistants: false, kdfDowngrade: true)
            let result = SimWorld(options: options).run()
            #expect(result.passed, "\(result.summary)")
            detected += result.stats["detected kdf downgrade", default: 0]
            attempted += result.stats["fault kdf downgrade", default: 0]
        }
        #expect(attempted > 0)
        #expect(detected == attempted, "every weakened evaluation was refused with the floor's error")
    }
}
