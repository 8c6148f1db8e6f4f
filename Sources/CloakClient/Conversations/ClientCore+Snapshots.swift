import CloakCRDT
import CloakCrypto
import CloakProtocol
import Foundation
import GRDB

extension ClientCore {
    /// True once this device has any conversation state or change set (a new device has none
    /// and bootstraps from snapshots first).
    var hasLocalHistory: Bool {
        !documents.conversations.isEmpty || !chains.isEmpty
    }

    /// A snapshot of the first conversation that has accumulated `snapshotEvery` change sets
    /// since the last snapshot this device knows of (DESIGN.md "Snapshots").
    func snapshotIfDue() throws(ClientError) -> Snapshot? {
        guard let (conversation, _) = changesSinceSnapshot.first(where: { $0.value >= configuration.snapshotEvery }),
            conversation != .library || documents.library.conversations.count > 0,
            var state = account, let document = documents.snapshot(of: conversation)
        else { return nil }
        let log = state.log
        guard let key = state.keyring.conversationKey(conversation, epoch: log.currentEpoch) else { return nil }
        account = state
        let previous = try store.read { db in
            try Row.fetchOne(
                db, sql: "SELECT hash, snapshot_seq FROM snapshots WHERE conversation = ?",
                arguments: [Data(conversation.bytes)])
        }
        let covers = chains.filter { $0.key.conversation == conversation }
            .map { ChainHead(device: $0.key.author, seq: $0.value.seq, hash: $0.value.hash) }
        let header = Snapshot.Header(
            account: log.account, conversation: conversation, author: me,
            snapshotSeq: UInt64(previous.map { $0["snapshot_seq"] as Int64 } ?? 0) + 1,
            prevSnapshotHash: try Self.storedHash(previous),
            epoch: log.currentEpoch, deviceLogIndex: log.headIndex, deviceLogHead: log.head, covers: covers)
        var body = Cloak_V1_SnapshotBody()
        body.state = Data(document)
        var plaintext = FrameCodec.serialize(body)
        defer { SecretBytes.wipe(&plaintext) }
        let snapshot: Snapshot
        do {
            snapshot = try SnapshotSealer.seal(
                body: plaintext, header: header, conversationKey: key, signer: identity.signing, random: random)
        } catch { throw .crypto(error) }
        changesSinceSnapshot[conversation] = 0
        pendingSnapshot = snapshot
        return snapshot
    }

    /// The server stored our snapshot: it is now the newest of its conversation's lineage.
    func snapshotStored() throws(ClientError) {
        guard let snapshot = pendingSnapshot else { return }
        pendingSnapshot = nil
        try store.write { db in try Self.recordLineage(snapshot, db) }
    }

    /// The hash in the previous snapshot's row, zero without one.
    private static func storedHash(_ row: Row?) throws(ClientError) -> SnapshotHash {
        guard let row else { return .zero }
        return try SnapshotHash(stored: row["hash"])
    }

    static func recordLineage(_ snapshot: Snapshot, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO snapshots(conversation, hash, author, snapshot_seq, covered_total) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(conversation) DO UPDATE SET hash = excluded.hash, author = excluded.author,
                snapshot_seq = excluded.snapshot_seq, covered_total = excluded.covered_total
                WHERE excluded.covered_total >= snapshots.covered_total
                """,
            arguments: [Data(snapshot.header.conversation.bytes), Data(snapshot.hash.bytes),
                        Data(snapshot.header.author.bytes), Int64(snapshot.header.snapshotSeq),
                        Int64(clamping: coveredTotal(snapshot.header))])
    }

    /// Verifies served snapshots (PROTOCOL.md §13). A verified snapshot whose covered heads
    /// agree with every change set this device holds becomes the newest of its conversation's
    /// lineage; a conversation this device has no state for starts from it (bootstrap). A
    /// snapshot that disagrees with what we hold is a fork; one older than the newest snapshot
    /// we recorded, served as the newest, is a rollback (ADV-12). Both are refused and reported.
    func loadSnapshots(_ snapshots: [Snapshot]) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        guard var state = account else { return output }
        try store.write { db in
            for snapshot in snapshots {
                let header = snapshot.header
                let problem = try Self.snapshotProblem(snapshot, state.log)
                    ?? coversProblem(header, db: db) ?? Self.rollbackProblem(header, db)
                if let problem {
                    try raise(SecurityEvent(.snapshotRejected, conversation: header.conversation, device: header.author,
                                            detail: problem), db, &output)
                    continue
                }
                let known = chains.contains { $0.key.conversation == header.conversation }
                guard !known, let key = state.keyring.conversationKey(header.conversation, epoch: header.epoch) else {
                    try Self.recordLineage(snapshot, db)
                    continue
                }
                guard var plaintext = try? SnapshotSealer.open(snapshot, conversationKey: key),
                    let body = try? FrameCodec.parse(Cloak_V1_SnapshotBody.self, from: plaintext, what: "snapshot"),
                    (try? documents.load(snapshot: Array(body.state), for: header.conversation)) != nil
                else {
                    try raise(SecurityEvent(.snapshotRejected, conversation: header.conversation,
                                            detail: "snapshot does not decrypt or decode"), db, &output)
                    continue
                }
                SecretBytes.wipe(&plaintext)
                for head in header.covers {
                    let chainKey = ChainKey(conversation: header.conversation, author: head.device)
                    let position = ChainPosition(seq: head.seq, hash: head.hash)
                    chains[chainKey] = position
                    try db.setChain(chainKey, position)
                }
                try Self.recordLineage(snapshot, db)
                unsavedChanges[header.conversation, default: 0] += 1
                bootstrappedFromSnapshots += 1
                output.changed.insert(header.conversation)
            }
            try saveDocuments(db: db)
        }
        account = state
        return output
    }

    static func snapshotProblem(_ snapshot: Snapshot, _ log: DeviceLog) -> String? {
        let header = snapshot.header
        guard header.account == log.account else { return "snapshot for another account" }
        guard let member = log.members[header.author], !member.isRecoveryKey else { return "unknown author" }
        do { try snapshot.verifySignature(member.signingKey) } catch { return "bad signature" }
        guard log.hash(atIndex: header.deviceLogIndex) == header.deviceLogHead,
            log.isActive(header.author, atIndex: header.deviceLogIndex),
            log.epoch(atIndex: header.deviceLogIndex) == header.epoch
        else { return "author not active at the head it names, or wrong epoch" }
        // A removed device's snapshots are never trusted (§10 rule 6 for snapshots): a state
        // cannot be checked against its cut-offs.
        guard log.removal(of: header.author) == nil else { return "author was removed from the account" }
        for head in header.covers where log.members[head.device] == nil {
            return "covers a device that was never a member"
        }
        return nil
    }

    /// A covered head that disagrees with a change set this device holds means the author saw
    /// (or the server shows) another history: a fork.
    func coversProblem(_ header: Snapshot.Header, db: Database) throws -> String? {
        for head in header.covers {
            let chain = chains[ChainKey(conversation: header.conversation, author: head.device)]
            let ours = chain?.seq == head.seq
                ? chain?.hash : try db.storedHash(conversation: header.conversation, author: head.device, seq: head.seq)
            if let ours, ours != head.hash { return "covers a change set that differs from ours (fork)" }
        }
        return nil
    }

    /// Serving a snapshot that covers less than the newest one already recorded is a rollback.
    static func rollbackProblem(_ header: Snapshot.Header, _ db: Database) throws -> String? {
        guard let recorded = try Int64.fetchOne(
            db, sql: "SELECT covered_total FROM snapshots WHERE conversation = ?",
            arguments: [Data(header.conversation.bytes)])
        else { return nil }
        return Int64(clamping: coveredTotal(header)) < recorded
            ? "an older snapshot than the newest one this device recorded (rollback)" : nil
    }

    static func coveredTotal(_ header: Snapshot.Header) -> UInt64 {
        header.covers.reduce(0) { $0 &+ $1.seq }
    }
}

extension ClientCore {
    /// Whether this device knows a snapshot of `conversation` (its own upload or a served one).
    func knowsSnapshot(of conversation: ConversationID) -> Bool {
        let count = try? store.read { db in
            try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM snapshots WHERE conversation = ?", arguments: [Data(conversation.bytes)])
        }
        return (count.flatMap { $0 } ?? 0) > 0
    }
}
