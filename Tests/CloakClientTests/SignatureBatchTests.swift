@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

/// The batch verifier's verdicts are exactly those of verifying one by one, in order, whichever
/// thread (a helper from the front, admission from the back) reaches each change set first.
@Suite struct SignatureBatchTests {
    @Test(arguments: [1, 3, 4, 9, 50, 200])
    func verdictsMatchSequentialVerification(count: Int) throws {
        let random = DeterministicRandom(seed: UInt64(count))
        let signer = Ed25519PrivateKey(using: random)
        let stranger = Ed25519PrivateKey(using: random)
        let key = SymmetricKey.random(using: random)
        let header = ChangeSetHeader(
            account: AccountID(unchecked: random.bytes(32)), conversation: ConversationID(unchecked: random.bytes(16)),
            author: DeviceID(signingKey: signer.publicKey), seq: 1, prevHash: .zero, epoch: 1, deviceLogIndex: 0,
            deviceLogHead: Digest32(unchecked: random.bytes(32)))
        var items: [SignatureCheck?] = []
        var expected: [Bool] = []
        for index in 0..<count {
            let sealed = try ChangeSetSealer.seal(
                body: [UInt8(truncatingIfNeeded: index)], header: header, conversationKey: key, signer: signer, random: random)
            switch random.bytes(1)[0] % 4 {
            case 0:
                // Another valid signature's bytes: the signature no longer matches the message.
                var message = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: sealed.wire, what: "change set")
                message.signature = Data(stranger.signature(for: [1, 2, 3]))
                items.append(SignatureCheck(changeSet: try ChangeSet(wire: FrameCodec.serialize(message)), key: signer.publicKey))
            case 1:
                items.append(nil)
            default:
                items.append(SignatureCheck(changeSet: sealed, key: signer.publicKey))
            }
            expected.append(items[index].map { (try? $0.changeSet.verifySignature($0.key)) != nil } ?? false)
        }
        let batch = SignatureBatch(items)
        let verdicts = items.indices.map { batch.isValid($0) }
        #expect(verdicts == expected)
        #expect(expected.contains(true) || count < 4)
    }
}
