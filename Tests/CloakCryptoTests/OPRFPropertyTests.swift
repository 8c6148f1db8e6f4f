@_spi(Randomness) import CloakCrypto
import Testing
@_spi(Randomness) import CloakTesting

/// Seeded property tests of the OPRF exchange: for random keys and inputs, the oblivious
/// exchange gives what the key holder computes directly, and nothing else does.
@Suite("OPRF properties (seeded)")
struct OPRFPropertyTests {
    @Test(
        "Finalize(Blind(x), BlindEvaluate(k, ·)) == Evaluate(k, x); another key or input differs",
        arguments: [UInt64(1), 2, 3, 4])
    func exchangeMatchesEvaluate(seed: UInt64) throws {
        let random = DeterministicRandom(seed: seed)
        for _ in 0..<16 {
            let key = try randomKey(random)
            let otherKey = try randomKey(random)
            let input = random.bytes(Int(random.uniform(200)))

            let blind = try OPRF.blind(input, using: random)
            let evaluated = try key.blindEvaluate(blind.blindedElement)
            let output = try blind.finalize(evaluatedElement: evaluated)
            #expect(output == (try key.evaluate(input)), "seed \(seed)")
            #expect(output.count == OPRF.outputByteCount)

            // A different key answers differently, for the exchange and the direct evaluation.
            let wrong = try blind.finalize(evaluatedElement: otherKey.blindEvaluate(blind.blindedElement))
            #expect(wrong != output, "seed \(seed)")
            #expect(wrong == (try otherKey.evaluate(input)), "seed \(seed)")

            // A second blind of the same input looks unrelated on the wire but unblinds the same.
            let again = try OPRF.blind(input, using: random)
            #expect(again.blindedElement != blind.blindedElement, "seed \(seed)")
            #expect(try again.finalize(evaluatedElement: key.blindEvaluate(again.blindedElement)) == output)

            // Any other input gives another output.
            #expect(try key.evaluate(input + [0]) != output, "seed \(seed)")
        }
    }

    private func randomKey(_ random: any RandomSource) throws -> OPRF.PrivateKey {
        try OPRF.PrivateKey(seed: SecretBytes.random(count: OPRF.seedByteCount, using: random), info: random.bytes(8))
    }
}
