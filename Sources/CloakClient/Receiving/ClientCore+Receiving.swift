import CloakCRDT
import CloakCrypto
import CloakProtocol
import Foundation
import Logging
import GRDB

extension ClientCore {
    /// Processes delivered change sets (catch-up, live, or re-fetched): each is verified, then
    /// applied, held, ignored as a duplicate, or rejected with a security event, and the
    /// cursor advances — all in one transaction, so a crash replays the batch idempotently.
    func receive(_ items: [(cursor: UInt64, wire: [UInt8])]) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        guard account != nil else { return output }
        let now = now()
        let newCursor = items.map(\.cursor).max()
        let parsed = items.map { item in Result { () throws(ProtocolError) in try ChangeSet(wire: item.wire) } }
        let signatures = signatureBatch(parsed)
        defer {
            signatures?.stop()
            preverified = nil
        }
        // Left over only if an earlier transaction failed: those positions were never stored
        // with their change sets and must not be written now.
        unsavedChains = []
        try store.write { db in
            for (index, (item, parsedItem)) in zip(items, parsed).enumerated() {
                let changeSet: ChangeSet
                switch parsedItem {
                case .success(let value): changeSet = value
                case .failure(let error):
                    try reject(item.wire, hash: nil, SecurityEvent(.malformedRecord, detail: error.message), db, &output)
                    continue
                }
                preverified = signatures?.isValid(index) == true ? SignatureBatch.Verified(changeSet) : nil
                if try process(changeSet, db: db, output: &output, now: now) {
                    let key = ChainKey(conversation: changeSet.header.conversation, author: changeSet.header.author)
                    try retryHeld(after: key, db: db, output: &output, now: now)
                }
            }
            try saveChains(db: db)
            if let newCursor, newCursor > (try db.metaUInt64("cursor") ?? 0) {
                try db.setMetaUInt64("cursor", newCursor)
            }
            try saveDocumentsIfDue(db: db)
        }
        output.gaps = Self.coalesce(output.gaps)
        return output
    }

    /// Verifies in parallel the signatures of the change sets whose author the log knows
    /// (admission checks the rest, and everything else, itself).
    private func signatureBatch(_ parsed: [Result<ChangeSet, ProtocolError>]) -> SignatureBatch? {
        guard let log = account?.log, parsed.count >= SignatureBatch.parallelThreshold else { return nil }
        return SignatureBatch(parsed.map { result in
            guard case .success(let changeSet) = result, let member = log.members[changeSet.header.author] else { return nil }
            return (changeSet: changeSet, key: member.signingKey)
        })
    }

    /// One request per chain gap: held change sets of one chain all wait for the same range.
    static func coalesce(_ gaps: [GapRequest]) -> [GapRequest] {
        var widest: [ChainKey: GapRequest] = [:]
        for gap in gaps {
            let key = ChainKey(conversation: gap.conversation, author: gap.author)
            if let known = widest[key] {
                widest[key] = GapRequest(
                    conversation: gap.conversation, author: gap.author, fromSeq: min(known.fromSeq, gap.fromSeq),
                    toSeq: max(known.toSeq, gap.toSeq))
            } else {
                widest[key] = gap
            }
        }
        return widest.values.sorted { ($0.conversation, $0.author) < ($1.conversation, $1.author) }
    }

    /// The cursor up to which this device has processed deliveries.
    func cursor() throws(ClientError) -> UInt64 {
        try store.read { db in try db.metaUInt64("cursor") ?? 0 }
    }

    /// Classifies and handles one change set; true if it was accepted (so held change sets of
    /// its chain may now follow). Never recurses: callers drain held change sets iteratively,
    /// so a long chain cannot exhaust the stack (ADV-29).
    @discardableResult
    func process(_ changeSet: ChangeSet, db: Database, output: inout CoreOutput, now: UInt64) throws -> Bool {
        guard let state = account else { return false }
        let header = changeSet.header
        let key = ChainKey(conversation: header.conversation, author: header.author)
        let verdict = Admission.verdict(
            for: changeSet, account: state.account, log: state.log, signatureVerified: preverified == SignatureBatch.Verified(changeSet),
            hasEpochKey: { state.keyring.has(epoch: $0) },
            chain: chains[key],
            storedHash: { try? db.storedHash(conversation: header.conversation, author: header.author, seq: $0) })
        switch verdict {
        case .duplicate:
            return false
        case .reject(let kind, let detail):
            if kind == .fork, var position = chains[key], !position.forked {
                position.forked = true
                chains[key] = position
                try db.setChain(key, position)
            }
            let event = SecurityEvent(
                kind, conversation: header.conversation, device: header.author, seq: header.seq, detail: detail)
            try reject(changeSet.wire, hash: changeSet.hash, event, db, &output)
            return false
        case .hold(let reason):
            try hold(changeSet, reason: reason, db: db, output: &output)
            return false
        case .accept:
            return try accept(changeSet, db: db, output: &output, now: now)
        }
    }

    private func accept(_ changeSet: ChangeSet, db: Database, output: inout CoreOutput, now: UInt64) throws -> Bool {
        let header = changeSet.header
        let body: Cloak_V1_ChangeSetBody
        let ops: [CRDTOperation]
        do { (body, ops) = try decrypt(changeSet) } catch {
            let kind: SecurityEvent.Kind = if case .crypto = error { .decryptionFailed } else { .undecodableOperations }
            let event = SecurityEvent(kind, conversation: header.conversation, device: header.author, seq: header.seq)
            try reject(changeSet.wire, hash: changeSet.hash, event, db, &output)
            return false
        }
        // Operation ids carry their author's replica id; a member may not write as another.
        let author = header.author.replicaID
        guard ops.allSatisfy({ $0.id.replica == author }) else {
            let event = SecurityEvent(
                .undecodableOperations, conversation: header.conversation, device: header.author, seq: header.seq,
                detail: "operations claim another author")
            try reject(changeSet.wire, hash: changeSet.hash, event, db, &output)
            return false
        }
        let report = documents.apply(ops, to: header.conversation, physicalMillis: now)
        replica.observe(report.newestTimestamp, physicalMillis: now)
        _ = try db.insertChangeSet(changeSet, local: header.author == me)
        let key = ChainKey(conversation: header.conversation, author: header.author)
        chains[key] = ChainPosition(seq: header.seq, hash: changeSet.hash)
        unsavedChains.insert(key)  // written once per batch, in the same transaction (saveChains)
        try checkHeads(changeSet, claims: body.heads, db: db, output: &output)
        if held.removeValue(forKey: changeSet.hash) != nil {
            try db.execute(sql: "DELETE FROM held WHERE hash = ?", arguments: [Data(changeSet.hash.bytes)])
        }
        unsavedChanges[header.conversation, default: 0] += 1
        changesSinceSnapshot[header.conversation, default: 0] += 1
        output.changed.insert(header.conversation)
        return true
    }

    /// ADV-13: compares the heads the author claims to have seen with what we hold, and the
    /// claims others made about this change set's chain position.
    private func checkHeads(
        _ changeSet: ChangeSet, claims: [Cloak_V1_Head], db: Database, output: inout CoreOutput
    ) throws {
        let header = changeSet.header
        let conversation = Data(header.conversation.bytes)
        if claimedChains.contains(ChainKey(conversation: header.conversation, author: header.author)),
            let claimed = try Data.fetchOne(
                db.cachedStatement(sql: "SELECT hash FROM claimed_heads WHERE conversation = ? AND device = ? AND seq = ?"),
                arguments: [conversation, Data(header.author.bytes), Int64(header.seq)]),
            Array(claimed) != changeSet.hash.bytes
        {
            try raise(
                SecurityEvent(.forkedView, conversation: header.conversation, device: header.author, seq: header.seq,
                              detail: "another device saw a different change set at this position"), db, &output)
        }
        for claim in claims {
            guard let head = try? ChainHead(message: claim), head.device != header.author else { continue }
            let ours: ChangeSetHash? =
                if let position = chains[ChainKey(conversation: header.conversation, author: head.device)],
                    position.seq == head.seq
                { position.hash } else {
                    try db.storedHash(conversation: header.conversation, author: head.device, seq: head.seq)
                }
            if let ours {
                if ours != head.hash {
                    try raise(
                        SecurityEvent(.forkedView, conversation: header.conversation, device: head.device,
                                      seq: head.seq, detail: "the author saw a different history"), db, &output)
                }
            } else {
                claimedChains.insert(ChainKey(conversation: header.conversation, author: head.device))
                try db.cachedStatement(
                    sql: """
                        INSERT INTO claimed_heads(conversation, device, seq, hash, claimed_by) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT DO NOTHING
                        """
                ).execute(arguments: [
                    conversation, Data(head.device.bytes), Int64(head.seq), Data(head.hash.bytes), Data(header.author.bytes),
                ])
            }
        }
    }

    private func hold(_ changeSet: ChangeSet, reason: HoldReason, db: Database, output: inout CoreOutput) throws {
        let isNew = held[changeSet.hash] == nil
        held[changeSet.hash] = (changeSet, reason)
        // Bounded by count and bytes (ADV-29): an evicted change set comes back through a later
        // catch-up or fetch.
        while held.count > configuration.maxHeldChangeSets || held.bytes > configuration.maxHeldBytes,
            let evicted = held.keys.first(where: { $0 != changeSet.hash })
        {
            held[evicted] = nil
            try db.execute(sql: "DELETE FROM held WHERE hash = ?", arguments: [Data(evicted.bytes)])
        }
        try db.execute(
            sql: "INSERT OR REPLACE INTO held(hash, wire, reason, received_at) VALUES (?, ?, ?, ?)",
            arguments: [Data(changeSet.hash.bytes), Data(changeSet.wire), reason.stored, Int64(now())])
        switch reason {
        case .deviceLog: output.fetchDeviceLog = true
        case .epochKey: output.fetchKeyEnvelopes = true
        case .gap(let expected):
            if isNew {
                output.gaps.append(
                    GapRequest(conversation: changeSet.header.conversation, author: changeSet.header.author,
                               fromSeq: expected, toSeq: changeSet.header.seq - 1))
            }
        }
    }

    /// Re-examines held change sets of one chain after it advanced (or, with nil, all of them
    /// after the device log or the keyring changed), until none makes progress.
    func retryHeld(after key: ChainKey?, db: Database, output: inout CoreOutput, now: UInt64) throws {
        if key == nil { unsavedChains = [] }  // see receive(_:)
        var progress = true
        while progress {
            progress = false
            let candidates = held.values.filter { entry in
                guard let key else { return true }
                return entry.changeSet.header.conversation == key.conversation
                    && entry.changeSet.header.author == key.author
            }.sorted { $0.changeSet.header.seq < $1.changeSet.header.seq }
            for candidate in candidates {
                held[candidate.changeSet.hash] = nil
                try db.execute(sql: "DELETE FROM held WHERE hash = ?", arguments: [Data(candidate.changeSet.hash.bytes)])
                var inner = CoreOutput()
                if try process(candidate.changeSet, db: db, output: &inner, now: now) { progress = true }
                inner.gaps = []  // already requested when first held
                output.merge(inner)
            }
        }
        // Called with nil from outside a receive batch (log or keys changed): nothing else
        // will write the chains this accepted.
        if key == nil { try saveChains(db: db) }
    }

    /// Writes the chain positions accepted change sets moved since the last call.
    func saveChains(db: Database) throws {
        for key in unsavedChains {
            if let position = chains[key] { try db.setChain(key, position) }
        }
        unsavedChains = []
    }

    func reject(_ wire: [UInt8], hash: ChangeSetHash?, _ event: SecurityEvent, _ db: Database, _ output: inout CoreOutput)
        throws
    {
        try db.recordRejected(wire, hash: hash, reason: event.kind.rawValue, at: now())
        try raise(event, db, &output)
    }

    func raise(_ event: SecurityEvent, _ db: Database, _ output: inout CoreOutput) throws {
        try db.recordEvent(event, at: now())
        output.events.append(event)
        logger.warning(
            "security event", metadata: ["kind": "\(event.kind.rawValue)", "detail": "\(event.detail)",
                                         "seq": "\(event.seq.map(String.init) ?? "-")"])
    }
}

extension ClientCore {
    /// The chain gaps held change sets are still waiting on (re-requested on every connection,
    /// so a lost or partial reply never leaves a chain stuck).
    func openGaps() -> [GapRequest] {
        var gaps: [GapRequest] = []
        for (changeSet, reason) in held.values {
            guard case .gap(let expected) = reason else { continue }
            let header = changeSet.header
            let known = chains[ChainKey(conversation: header.conversation, author: header.author)]?.seq ?? 0
            let from = max(expected, known + 1)
            guard header.seq > from else { continue }
            gaps.append(GapRequest(conversation: header.conversation, author: header.author, fromSeq: from, toSeq: header.seq - 1))
        }
        return Self.coalesce(gaps)
    }
}
