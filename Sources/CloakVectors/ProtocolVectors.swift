@_spi(Randomness) import CloakCrypto
@_spi(Randomness) public import CloakProtocol
import Foundation
@_spi(Randomness) import CloakTesting

/// The generator of `Protocol/vectors/*.json`. `swift run cloak-vectors write Protocol/vectors`
/// writes these files and `VectorTests` regenerates them in-process and compares byte for byte,
/// so the committed vectors can never drift from the code.
///
/// ```swift
/// for file in try ProtocolVectors.files() {
///     try file.contents.write(to: directory.appendingPathComponent(file.name), atomically: true, encoding: .utf8)
/// }
/// ```
///
/// Every input (seeds, keys, nonces, ephemeral seeds, salts) is fixed: `material(label, n)`
/// is BLAKE2b-n of `"cloak.v1.vectors/" ‖ label`, handed to the constructions through
/// `FixedBytesRandom`, so no vector depends on a random number generator. The inputs are
/// also written into the vectors, so another implementation needs none of this.
public enum ProtocolVectors {
    /// One vector file.
    public struct File: Sendable {
        /// File name inside `Protocol/vectors/`.
        public let name: String
        /// Exact file contents.
        public let contents: String
    }

    /// Every vector file, in a fixed order.
    public static func files() throws -> [File] {
        let world = try VectorWorld()
        return [
            File(name: "change_set.json", contents: VectorJSON.array(world.changeSets.map(\.json)).rendered()),
            File(name: "device_log.json", contents: VectorJSON.array(world.logCases.map(\.json)).rendered()),
            File(name: "auth.json", contents: VectorJSON.array(try world.authCases()).rendered()),
            File(name: "sealed_key.json", contents: VectorJSON.array(world.envelopeCases.map(\.json)).rendered()),
            File(
                name: "conversation_key.json", contents: VectorJSON.array(world.conversationKeyCases.map(\.json)).rendered()),
            File(name: "key_derivation.json", contents: VectorJSON.array(try world.derivationCases()).rendered()),
            File(name: "snapshot.json", contents: VectorJSON.array(world.snapshotCases.map(\.json)).rendered()),
            File(name: "pairing.json", contents: VectorJSON.array([try world.pairingCase()]).rendered()),
            File(name: "recovery.json", contents: VectorJSON.array(try world.recoveryCases()).rendered()),
            File(name: "padding.json", contents: VectorJSON.array(try VectorWorld.paddingCases()).rendered()),
        ] + (try CRDTVectors.files())
    }

    /// Valid frames of every body type, built from the vector material (round-trip tests and
    /// the fuzzer's seed corpus).
    public static func sampleFrames() throws -> [(name: String, frame: Cloak_V1_Frame)] {
        try VectorWorld().sampleFrames()
    }

    /// Deterministic input bytes: BLAKE2b of a label (16...64 bytes).
    static func material(_ label: String, _ count: Int) -> [UInt8] {
        BLAKE2b.hash(Array("cloak.v1.vectors/\(label)".utf8), outputByteCount: count)
    }

    /// Fixed wall-clock values (2026-01-01T00:00:00Z and later), informational in every record.
    static let baseTimeMs: UInt64 = 1_767_225_600_000
}

/// A device of the vector world: its Ed25519 seed and X25519 secret are fixed material.
struct VectorDevice {
    let name: String
    let seed: [UInt8]
    let signing: Ed25519PrivateKey
    let agreementSecret: [UInt8]
    let agreement: X25519PrivateKey
    var id: DeviceID { DeviceID(signingKey: signing.publicKey) }

    init(_ name: String) throws {
        self.name = name
        seed = ProtocolVectors.material("device/\(name)/ed25519-seed", 32)
        signing = try Ed25519PrivateKey(seed: SecretBytes(copying: seed))
        agreementSecret = ProtocolVectors.material("device/\(name)/x25519-secret", 32)
        agreement = try X25519PrivateKey(secret: SecretBytes(copying: agreementSecret))
    }
}

/// Everything the vectors describe, built once: an account whose device log adds B and C,
/// registers a recovery key, and removes C with a cut-off, plus change sets, envelopes and
/// snapshots written under it.
struct VectorWorld {
    let a: VectorDevice
    let b: VectorDevice
    let c: VectorDevice
    let recoveryEntropy: [UInt8]
    let recovery: RecoveryKeys
    let log: DeviceLog
    let logCases: [LogCase]
    let epochKeys: [UInt64: [UInt8]]
    let conversation: ConversationID
    let changeSets: [ChangeSetCase]
    let envelopeCases: [EnvelopeCase]
    let conversationKeyCases: [ConversationKeyCase]
    let snapshotCases: [SnapshotCase]

    var account: AccountID { log.account }

    init() throws {
        a = try VectorDevice("A")
        b = try VectorDevice("B")
        c = try VectorDevice("C")
        recoveryEntropy = ProtocolVectors.material("recovery/entropy", 16)
        recovery = RecoverySecret(entropy: SecretBytes(copying: recoveryEntropy)).keys
        conversation = ConversationID(unchecked: ProtocolVectors.material("conversation/X", 16))
        epochKeys = [1: ProtocolVectors.material("epoch-key/1", 32), 2: ProtocolVectors.material("epoch-key/2", 32)]

        // Log entries 0...3: genesis A, add B (by A), add C (by B), set_recovery (by A).
        var builder = try LogBuilder(genesis: a, accountNonce: ProtocolVectors.material("account-nonce", 16))
        try builder.add(b, signer: a)
        try builder.add(c, signer: b)
        try builder.setRecovery(recovery, signer: a)

        // Change sets under entry 3 (epoch 1): A seq 1 and 2 in X, C seq 1 in X.
        let contents = try WorldContents(a: a, b: b, c: c, conversation: conversation)
        var sets: [ChangeSetCase] = []
        let head3 = builder.log
        sets.append(
            try ChangeSetCase.make(
                "A seq 1 in conversation X", world: (head3, epochKeys), author: a,
                conversation: conversation, seq: 1, prev: .zero, heads: [], operations: contents.aFirst))
        sets.append(
            try ChangeSetCase.make(
                "C seq 1 in conversation X", world: (head3, epochKeys), author: c,
                conversation: conversation, seq: 1, prev: .zero,
                heads: [sets[0].head], operations: contents.cFirst))
        sets.append(
            try ChangeSetCase.make(
                "A seq 2 in conversation X", world: (head3, epochKeys), author: a,
                conversation: conversation, seq: 2, prev: sets[0].changeSet.hash,
                heads: [sets[1].head], operations: contents.aSecond))

        // Entry 4: B removes C, keeping C's seq 1 in X; epoch 2 starts.
        try builder.remove(c, cutoffs: [sets[1].cutoff], signer: b)
        sets.append(
            try ChangeSetCase.make(
                "B seq 1 in the account library, epoch 2", world: (builder.log, epochKeys),
                author: b, conversation: .library, seq: 1, prev: .zero, heads: [],
                operations: contents.bLibrary))
        log = builder.log
        // Entries 5–7 (PROTOCOL.md §29), after every other vector: A grants assistant G
        // conversations X and Y, B removes X from its scope (epoch 3), A revokes it (epoch 4).
        let assistant = try VectorDevice("G")
        let other = ConversationID(unchecked: ProtocolVectors.material("conversation/Y", 16))
        try builder.grant(assistant, scope: [conversation, other], signer: a)
        try builder.end(assistant, removing: [conversation], signer: b)
        try builder.end(assistant, removing: nil, signer: a)
        logCases = builder.cases
        changeSets = sets
        // With the grant (entry 5, epoch 2), A seals G the keys of its scope for every epoch A
        // holds: X of epoch 1 (its history) and Y of epoch 2.
        conversationKeyCases = try [
            ConversationKeyCase.make(
                "conversation X key of epoch 1 for assistant G, sealed by A", account: head3.account, epoch: 1,
                epochKey: epochKeys[1] ?? [], conversation: conversation, sender: a, recipient: assistant),
            ConversationKeyCase.make(
                "conversation Y key of epoch 2 for assistant G, sealed by A", account: head3.account, epoch: 2,
                epochKey: epochKeys[2] ?? [], conversation: other, sender: a, recipient: assistant),
        ]

        envelopeCases = try [
            EnvelopeCase.make(
                "epoch 1 key for B, sealed by A", account: head3.account, epoch: 1,
                key: epochKeys[1] ?? [], sender: a, recipient: .device(b)),
            EnvelopeCase.make(
                "epoch 2 key for A, sealed by B", account: head3.account, epoch: 2,
                key: epochKeys[2] ?? [], sender: b, recipient: .device(a)),
            EnvelopeCase.make(
                "epoch 2 key for the recovery key, sealed by B", account: head3.account, epoch: 2,
                key: epochKeys[2] ?? [], sender: b, recipient: .recovery(recovery)),
        ]
        let first = try SnapshotCase.make(
            "first snapshot of X by A", world: (log, epochKeys), author: a,
            conversation: conversation, snapshotSeq: 1, prev: .zero,
            covers: [sets[2].head, sets[1].head], atIndex: 3, state: contents.state)
        let second = try SnapshotCase.make(
            "second snapshot of X by B, epoch 2", world: (log, epochKeys), author: b,
            conversation: conversation, snapshotSeq: 1, prev: first.snapshot.hash,
            covers: [sets[2].head, sets[1].head], atIndex: 4, state: contents.state)
        snapshotCases = [first, second]
    }

    func epochKey(_ epoch: UInt64) throws -> SymmetricKey {
        try SymmetricKey(bytes: epochKeys[epoch] ?? [])
    }
}
