import CloakSimulation
import Testing

/// Assistants in the deterministic simulator (issue 27, PROTOCOL.md §29): granted a scope with
/// an expiry in virtual time, asked questions, answering through `cloak-agent`'s core by
/// streaming, restricted, granted more, revoked or expired, while every check runs; and a
/// hostile assistant whose writes a colluding server hands to every device (ADV-49).
@Suite("Deterministic simulation: assistants (ADV-49)")
struct AssistantSimulationTests {
    /// Small runs: two accounts of two devices.
    static func options(seed: UInt64, faults: FaultProfile) -> SimOptions {
        SimOptions(seed: seed, accounts: 2, devices: 2, ops: 60, faults: faults, assistants: true)
    }

    @Test("assistants join, answer, are restricted, revoked or expire, and every check passes", arguments: [
        (UInt64(3), FaultProfile.none), (4, .none), (5, .lossy), (7, .all), (8, .all),
    ])
    func assistantsPassEveryCheck(seed: UInt64, faults: FaultProfile) {
        let result = SimWorld(options: Self.options(seed: seed, faults: faults)).run()
        #expect(result.passed, "\(result.summary)")
        #expect(result.stats["assistant joined", default: 0] > 0, "\(result.summary)")
        #expect(result.stats["assistant reply", default: 0] > 0, "\(result.summary)")
    }

    /// Devices grant an assistant more (PROTOCOL.md §29): a conversation a restriction took
    /// (seed 11), a new one (22), a later expiry only (13); every check passes, the assistant's
    /// keys included just before the regrant.
    @Test("assistants are granted again what a restriction took, widened and extended, and every check passes")
    func assistantsWidenedAndRegranted() {
        var counts: [String: Int] = [:]
        for seed in [UInt64(11), 22, 13] {
            let result = SimWorld(options: Self.options(seed: seed, faults: .all)).run()
            #expect(result.passed, "\(result.summary)")
            #expect(result.stats["assistant widened", default: 0] > 0, "\(result.summary)")
            for kind in ["regrant", "widen", "extend"] { counts[kind, default: 0] += result.stats["assistant \(kind)", default: 0] }
        }
        #expect(counts.values.allSatisfy { $0 > 0 }, "\(counts)")
    }

    @Test("the assistants' workload is deterministic: one seed, one trace")
    func sameSeedSameTrace() {
        let options = Self.options(seed: 7, faults: .all)
        let first = SimWorld(options: options).run()
        let again = SimWorld(options: options).run()
        #expect(first.traceHash == again.traceHash)
        #expect(first.stats == again.stats)
    }

    /// Fails if any device admits an assistant's change set outside its scope, as role `user`
    /// or after its expiry: the run's "assistant scope" check finds the message shown or the
    /// alarm missing.
    @Test("ADV-49 a hostile assistant's writes outside its scope, as user and after expiry are refused on every device")
    func hostileAssistantIsRefusedEverywhere() {
        var detected: [String: Int] = [:]
        for seed in UInt64(22)..<26 {
            let result = SimWorld(options: Self.options(seed: seed, faults: .hostile)).run()
            #expect(result.passed, "\(result.summary)")
            for (key, value) in result.stats where key.hasPrefix("detected assistant") { detected[key, default: 0] += value }
        }
        for attack in ["out of scope", "as user", "after expiry"] {
            #expect(detected["detected assistant \(attack)", default: 0] > 0, "no \(attack) refusal in \(detected)")
        }
    }
}
