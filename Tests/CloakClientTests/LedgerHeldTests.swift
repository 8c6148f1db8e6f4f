@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Testing

@_spi(Simulation) @testable import CloakClient

/// A held change set is retried whenever its chain, the log or the keyring moves; the ledger
/// remembers which key its signature verified with when it was held, so a retry need not verify
/// it again — and that memory belongs to exactly the copy that was checked.
@Suite struct LedgerHeldTests {
    @Test func aSignatureVerdictStaysWithTheCopyThatWasChecked() throws {
        let random = DeterministicRandom(seed: 41)
        let signer = Ed25519PrivateKey(using: random)
        let key = SymmetricKey.random(using: random)
        let sealed = try (2...3).map { seq in
            let header = ChangeSetHeader(
                account: AccountID(unchecked: [UInt8](repeating: 1, count: 32)),
                conversation: ConversationID(unchecked: [UInt8](repeating: 2, count: 16)),
                author: DeviceID(signingKey: signer.publicKey), seq: UInt64(seq), prevHash: .zero, epoch: 1,
                deviceLogIndex: 0, deviceLogHead: Digest32(unchecked: [UInt8](repeating: 3, count: 32)))
            return try ChangeSetSealer.seal(body: [UInt8(seq)], header: header, conversationKey: key, signer: signer, random: random)
        }
        let store = try SQLiteClientStore(path: nil)
        var ledger = Ledger()
        let roomy = (count: 10, bytes: 1 << 20)
        try store.write { tx in
            try ledger.hold(sealed[0], reason: .gap(expectedSeq: 1), verifiedWith: signer.publicKey, now: 1, limits: roomy, tx)
            // Held before its author was listed: nothing was verified.
            try ledger.hold(sealed[1], reason: .deviceLog(index: 3), verifiedWith: nil, now: 1, limits: roomy, tx)
            let taken = try ledger.takeHeld(of: nil, tx)
            #expect(taken.map(\.changeSet.hash) == [sealed[0].hash, sealed[1].hash])
            #expect(taken.map(\.verifiedWith) == [signer.publicKey, nil])

            // Held again without a check (another copy with the same hash): the earlier verdict
            // does not carry over.
            try ledger.hold(sealed[0], reason: .gap(expectedSeq: 1), verifiedWith: signer.publicKey, now: 2, limits: roomy, tx)
            try ledger.hold(sealed[0], reason: .gap(expectedSeq: 1), verifiedWith: nil, now: 3, limits: roomy, tx)
            #expect(try ledger.takeHeld(of: nil, tx).map(\.verifiedWith) == [nil])
        }
    }
}
