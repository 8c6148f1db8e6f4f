@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

/// THE RULE of PROTOCOL.md §"Admission" as a pure function (`DeviceLog.admits`): which change
/// sets a device accepts, holds or rejects, and that every arrival order ends in the same
/// accepted set (ADV-09, ADV-31).
@Suite("Admission rule")
struct AdmissionTests {
    @Test("an active author at a known index with the right head and epoch is accepted")
    func accepted() throws {
        let f = try AccountFixture()
        let cs = try f.seal(by: f.c, seq: 1)
        #expect(f.log.admits(cs) == .accepted)
        #expect(f.log.admits(changeSetHeader: cs.header, hash: cs.hash) == .accepted)
        // Naming an older index where the author was already active is fine too.
        let b = try f.seal(by: f.b, seq: 1, atIndex: 1)
        #expect(f.log.admits(b) == .accepted)
    }

    @Test("each failed check has its own rejection")
    func rejections() throws {
        let f = try AccountFixture()
        let base = try f.seal(by: f.c, seq: 1).header
        func decide(_ edit: (inout ChangeSetHeader) -> Void) -> Admission {
            var header = base
            edit(&header)
            return f.log.admits(changeSetHeader: header, hash: EntryHash(hashing: [1]))
        }
        #expect(
            decide { $0.account = AccountID(unchecked: [UInt8](repeating: 1, count: 32)) } == .rejected(.wrongAccount))
        #expect(decide { $0.deviceLogIndex = 7 } == .holdForDeviceLog(index: 7))
        #expect(decide { $0.deviceLogHead = EntryHash(hashing: [2]) } == .rejected(.deviceLogFork(atIndex: 2)))
        // C was added at index 2, so it is not active at index 1.
        #expect(
            decide {
                $0.deviceLogIndex = 1
                $0.deviceLogHead = f.log.hash(atIndex: 1) ?? .zero
            } == .rejected(.authorNotActive))
        #expect(decide { $0.author = TestDevice(seed: 666).id } == .rejected(.authorNotActive))
        #expect(decide { $0.epoch = 2 } == .rejected(.wrongEpoch(expected: 1, got: 2)))
    }

    @Test("admits(_:) checks the author's signature with the key the log lists")
    func signature() throws {
        let f = try AccountFixture()
        let cs = try f.seal(by: f.c, seq: 1)
        var m = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: cs.wire, what: "change set")
        m.signature = Data(flip(cs.signature, 17))
        #expect(f.log.admits(try ChangeSet(wire: FrameCodec.serialize(m))) == .rejected(.badSignature))
        // Signed by B but claiming C as author.
        let impostor = try f.seal(by: f.b, seq: 1)
        m = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: impostor.wire, what: "change set")
        m.author = Data(f.c.id.bytes)
        #expect(f.log.admits(try ChangeSet(wire: FrameCodec.serialize(m))) == .rejected(.badSignature))
    }

    @Test("a change set naming an entry the receiver lacks is held, then accepted once the log arrives")
    func hold() throws {
        var f = try AccountFixture()
        let behind = f.log
        let d = TestDevice(seed: 104)
        try f.add(d, by: f.a)
        let cs = try f.seal(by: d, seq: 1)
        #expect(behind.admits(cs) == .holdForDeviceLog(index: 3))
        #expect(try behind.extended(with: f.log.entries).admits(cs) == .accepted)
    }

    @Test("the recovery key never writes change sets")
    func recoveryKeyIsNoAuthor() throws {
        var f = try AccountFixture()
        let recovery = RecoverySecret.random(using: DeterministicRandom(seed: 8)).keys
        try f.log.append(
            DeviceLogEntry.add(
                .setRecovery, signingKey: recovery.signing.publicKey, agreementKey: recovery.agreement.publicKey,
                after: f.log, signer: f.a.signing, createdAtMs: AccountFixture.time))
        var header = try f.seal(by: f.a, seq: 1).header
        header.author = recovery.id
        #expect(f.log.admits(changeSetHeader: header, hash: .zero) == .rejected(.authorNotActive))
    }

    /// C writes seq 1...3 in X and seq 1 in Y under index 2; B removes C keeping X up to seq 2.
    struct RemovalScenario {
        var f: AccountFixture
        let before: DeviceLog
        let x1, x2, x3, y1, x2Fork, afterRemoval, guessedEpoch: ChangeSet

        init() throws {
            f = try AccountFixture()
            before = f.log
            x1 = try f.seal(by: f.c, seq: 1)
            x2 = try f.seal(by: f.c, seq: 2, prev: x1.hash)
            x3 = try f.seal(by: f.c, seq: 3, prev: x2.hash)
            x2Fork = try f.seal(by: f.c, seq: 2, prev: x1.hash, body: Array("other".utf8), nonceSeed: 99)
            y1 = try f.seal(by: f.c, seq: 1, conversation: AccountFixture.otherConversation)
            let cutoff = RemovalCutoff(conversation: AccountFixture.conversation, seq: 2, hash: x2.hash)
            try f.log.append(f.removeEntry(f.c, by: f.b, cutoffs: [cutoff]))
            afterRemoval = try f.seal(by: f.c, seq: 4, prev: x3.hash)
            // Old index, but the new epoch: a removed device guessing its way into epoch 2.
            guessedEpoch = try f.seal(by: f.c, seq: 4, prev: x3.hash, atIndex: 2, epoch: 2)
        }
    }

    @Test("ADV-09 after removal: within the cut-off accepted; after it, forked at it, or elsewhere rejected")
    func removalCutoff() throws {
        let s = try RemovalScenario()
        let log = s.f.log
        #expect(log.admits(s.x1) == .accepted)
        #expect(log.admits(s.x2) == .accepted)
        #expect(log.admits(s.x2Fork) == .rejected(.beyondRemovalCutoff(cutoffSeq: 2)))
        #expect(log.admits(s.x3) == .rejected(.beyondRemovalCutoff(cutoffSeq: 2)))
        #expect(log.admits(s.y1) == .rejected(.noCutoffForConversation))
        #expect(log.admits(s.afterRemoval) == .rejected(.authorNotActive))
        #expect(log.admits(s.guessedEpoch) == .rejected(.wrongEpoch(expected: 1, got: 2)))
        // Before the removal is known, everything C wrote under index 2 looks fine.
        for cs in [s.x1, s.x2, s.x3, s.y1, s.x2Fork] { #expect(s.before.admits(cs) == .accepted) }
    }

    /// A receiver that applies the rule and re-evaluates what it holds and has accepted whenever
    /// its log advances (PROTOCOL.md §"Admission": the state is recomputed from the accepted set).
    struct Receiver {
        var log: DeviceLog
        var accepted: Set<ChangeSetHash> = []
        var held: [ChangeSet] = []
        var known: [ChangeSetHash: ChangeSet] = [:]

        mutating func receive(_ cs: ChangeSet) {
            known[cs.hash] = cs
            switch log.admits(cs) {
            case .accepted: accepted.insert(cs.hash)
            case .holdForDeviceLog: held.append(cs)
            case .rejected: break
            }
        }

        mutating func learn(_ newer: DeviceLog) throws {
            log = try log.extended(with: newer.entries)
            accepted = accepted.filter { known[$0].map { log.admits($0) == .accepted } ?? false }
            let waiting = held
            held = []
            waiting.forEach { receive($0) }
        }
    }

    @Test("ADV-31 every arrival order of the removal and C's change sets ends in the same accepted set")
    func concurrentRemovalConverges() throws {
        let s = try RemovalScenario()
        let sets = [s.x1, s.x2, s.x3, s.y1, s.x2Fork, s.afterRemoval]
        let expected: Set<ChangeSetHash> = [s.x1.hash, s.x2.hash]
        var rng = SeededRandom(seed: 31)
        var orders = 0
        for _ in 0..<200 {
            var events: [ChangeSet?] = sets + [nil]  // nil = the removal entry arrives
            events.shuffle(using: &rng)
            var receiver = Receiver(log: s.before)
            for event in events {
                if let cs = event { receiver.receive(cs) } else { try receiver.learn(s.f.log) }
            }
            #expect(receiver.accepted == expected && receiver.held.isEmpty)
            orders += 1
        }
        TestData.report("admission: \(orders) shuffled arrival orders converge to the cut-off's accepted set")
    }
}
