@_spi(Simulation) import CloakClient
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Simulation) import CloakSimulation
@_spi(Randomness) import CloakTesting
import Foundation
import Testing

/// The client core runs over two stores: SQLite (apps) and the simulator's in-memory tables.
/// One seeded sequence of writes goes to both, and every read must agree; a write that fails
/// part-way must leave nothing behind in either.
@Suite("Client store conformance: SQLite and the simulator's memory store answer alike")
struct ClientStoreConformanceTests {
    /// A pool of distinct, valid change sets over a few chains.
    struct Pool {
        var changeSets: [ChangeSet] = []

        init(seed: UInt64, count: Int) throws {
            let random = DeterministicRandom(seed: seed)
            let signer = Ed25519PrivateKey(using: random)
            let key = SymmetricKey.random(using: random)
            let account = AccountID(unchecked: random.bytes(32))
            let conversations = (0..<3).map { _ in ConversationID(unchecked: random.bytes(16)) }
            let authors = (0..<2).map { _ in DeviceID(unchecked: random.bytes(16)) }
            var seqs: [String: UInt64] = [:]
            for index in 0..<count {
                let conversation = conversations[index % 3]
                let author = authors[(index / 3) % 2]
                let slot = "\(conversation)\(author)"
                let seq = (seqs[slot] ?? 0) + 1
                seqs[slot] = seq
                let header = ChangeSetHeader(
                    account: account, conversation: conversation, author: author, seq: seq,
                    prevHash: seq == 1 ? .zero : Digest32(unchecked: random.bytes(32)), epoch: 1, deviceLogIndex: 0,
                    deviceLogHead: Digest32(unchecked: random.bytes(32)))
                changeSets.append(try ChangeSetSealer.seal(
                    body: random.bytes(20), header: header, conversationKey: key, signer: signer, random: random))
            }
        }
    }

    /// Applies one seeded random write to `tx`; the same seed makes the same write on any store.
    static func randomWrite(_ tx: any StoreTransaction, _ pool: Pool, _ rng: DeterministicRandom) throws {
        let pick = Int(rng.uniform(UInt32(pool.changeSets.count)))
        let changeSet = pool.changeSets[pick]
        let header = changeSet.header
        let chain = ChainKey(conversation: header.conversation, author: header.author)
        switch rng.uniform(14) {
        case 0: try tx.setMeta(.cursor, rng.bytes(8))
        case 1: try tx.putDeviceLogEntry(index: UInt64(rng.uniform(4)), wire: rng.bytes(12))
        case 2: try tx.putEpochKey(epoch: UInt64(rng.uniform(3) + 1), sealed: rng.bytes(16))
        case 3: try tx.queueEnvelope(rng.bytes(10))
        case 4:
            let id = try tx.insertChangeSet(changeSet, local: rng.uniform(2) == 0)
            if rng.uniform(2) == 0, (try? tx.addToOutbox(id)) == nil { /* already queued: both stores refuse */ }
        case 5: try tx.setChain(chain, ChainPosition(seq: header.seq, hash: changeSet.hash, forked: rng.uniform(5) == 0))
        case 6:
            if let id = try tx.changeSetID(hash: changeSet.hash) { try tx.deleteChangeSet(id: id) }
        case 7: try tx.removeFromOutbox(hash: changeSet.hash)
        case 8: _ = try tx.insertPendingOperations(conversation: header.conversation, sealed: rng.bytes(9))
        case 9:
            let document = SavedDocument(
                conversation: header.conversation, sealed: rng.bytes(7), appliedThrough: Int64(rng.uniform(20)))
            if rng.uniform(3) == 0 { try tx.putDocumentBase(document) } else { try tx.putSavedDocument(document) }
        case 10: try tx.putHeld(hash: changeSet.hash, wire: changeSet.wire, reason: "gap:\(header.seq)", at: 1)
        case 11: try tx.deleteClaims(chain, throughSeq: header.seq)
        case 12: try tx.setUnanswered(hash: changeSet.hash, rng.uniform(3) != 0)
        default:
            try tx.putClaim(HeadClaim(chain: chain, seq: header.seq, hash: changeSet.hash, claimedBy: header.author))
            try tx.recordEvent(SecurityEvent(.withheld, seq: header.seq, detail: "d\(pick)"), at: 1, kept: 5)
            try tx.setHeard(header.author, at: UInt64(pick))
            if pick % 3 == 0 {
                try tx.putIncident(Incident(kind: .withheld, device: header.author, detail: "d\(pick)", openedAt: 1))
            } else if pick % 3 == 1 {
                try tx.deleteIncident(id: Incident(kind: .withheld, device: header.author, detail: "", openedAt: 0).id)
            }
        }
    }

    /// Everything readable, in a comparable form.
    static func snapshot(_ store: any ClientStore, _ pool: Pool) throws -> [String] {
        try store.read { tx in
            var lines: [String] = []
            lines.append("meta \(try tx.meta(.cursor) ?? [])")
            lines.append("log \(try tx.deviceLogEntries())")
            lines.append("keys \(try tx.epochKeys().map { "\($0.epoch):\($0.sealed)" })")
            lines.append("envelopes \(try tx.queuedEnvelopes(limit: 100).map { "\($0.id):\($0.wire)" })")
            lines.append("sets \(try tx.changeSets(in: nil, after: 0).map { "\($0.id):\($0.wire.count)" })")
            lines.append("newest \(try tx.newestChangeSetID()) replay \(try tx.replayStart())")
            lines.append("chains \(try tx.chains().sorted { ($0.key.conversation, $0.key.author) < ($1.key.conversation, $1.key.author) }.map { "\($0.value)" })")
            lines.append("outbox \(try tx.outbox(limit: 100).map(\.count)) unanswered \(try tx.unansweredOutbox())")
            lines.append("pending \(try tx.pendingOperations().map { "\($0.id):\($0.sealed)" })")
            lines.append("documents \(try tx.savedDocuments().map { "\($0.conversation):\($0.appliedThrough)" })")
            lines.append("held \(try tx.heldChangeSets().map(\.reason).sorted())")
            lines.append("claims \(try tx.claims().map { "\($0.seq):\($0.hash)" }) events \(try tx.events().map(\.detail))")
            lines.append("incidents \(try tx.incidents().map(\.id).sorted())")
            lines.append("heard \(try tx.heard().map { "\($0.key):\($0.value)" }.sorted())")
            for changeSet in pool.changeSets {
                let h = changeSet.header
                lines.append("base \(try tx.documentBase(h.conversation).map { "\($0.sealed):\($0.appliedThrough)" } ?? "-")")
                lines.append("hash \(try tx.storedHash(conversation: h.conversation, author: h.author, seq: h.seq).map { "\($0)" } ?? "-")")
            }
            return lines
        }
    }

    @Test("seeded writes, some failing part-way, leave both stores answering every read the same", arguments: [1, 2, 3])
    func sameAnswers(seed: UInt64) throws {
        let pool = try Pool(seed: seed, count: 24)
        let sqlite = try SQLiteClientStore(path: nil)
        let memory = MemoryClientStore()
        let (a, b) = (DeterministicRandom(seed: seed), DeterministicRandom(seed: seed))
        for step in 0..<150 {
            // Every fifth transaction dies after a few writes: neither store may keep any of them.
            let failing = step % 5 == 4
            for (store, rng) in [(sqlite as any ClientStore, a), (memory as any ClientStore, b)] {
                let outcome = Self.write(store, pool, rng, failing: failing)
                #expect(outcome != "planted" || failing)
            }
            let left = try Self.snapshot(sqlite, pool)
            let right = try Self.snapshot(memory, pool)
            var difference = ""
            for index in left.indices where index < right.count && left[index] != right[index] {
                difference = "sqlite \(left[index]) / memory \(right[index])"
                break
            }
            if left != right {
                Issue.record("step \(step) differs: \(difference)")
                break
            }
        }
    }

    /// One transaction of three random writes; "planted" when it was made to fail, "constraint"
    /// when a write broke a constraint (the same one in both stores), "committed" otherwise.
    static func write(_ store: any ClientStore, _ pool: Pool, _ rng: DeterministicRandom, failing: Bool) -> String {
        do {
            try store.write { tx in
                for _ in 0..<3 { try randomWrite(tx, pool, rng) }
                if failing { throw ClientError.timeout }
            }
            return "committed"
        } catch {
            return error == .timeout ? "planted" : "constraint"
        }
    }

    @Test("a planted failure in the memory store rolls back everything its write did")
    func plantedFailureRollsBack() throws {
        let pool = try Pool(seed: 9, count: 6)
        let memory = MemoryClientStore()
        try memory.write { tx in _ = try tx.insertChangeSet(pool.changeSets[0], local: true) }
        let before = try Self.snapshot(memory, pool)
        memory.failWrite(afterMutations: 4)
        #expect(throws: ClientError.self) {
            try memory.write { tx in
                for changeSet in pool.changeSets.dropFirst() { _ = try tx.insertChangeSet(changeSet, local: false) }
            }
        }
        #expect(try Self.snapshot(memory, pool) == before)
        // The next write is not affected.
        try memory.write { tx in _ = try tx.insertChangeSet(pool.changeSets[1], local: false) }
        #expect(try memory.read { tx in try tx.changeSets(in: nil, after: 0).count } == 2)
    }
}
