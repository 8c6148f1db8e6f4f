import CloakCRDT
import CloakCrypto
import CloakProtocol

extension ClientCore {
    /// Processes delivered change sets (catch-up, live, or re-fetched): each is verified, then
    /// applied, held, ignored as a duplicate, or rejected with a security event, and the
    /// cursor advances — all in one transaction, so a crash replays the batch idempotently.
    func receive(_ items: [(cursor: UInt64, wire: [UInt8])]) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        guard let log = membership.log, !membership.removed else { return output }
        let now = now()
        let parsed = items.map { item in Result { () throws(ProtocolError) in try ChangeSet(wire: item.wire) } }
        let newest = zip(items, parsed).max { $0.0.cursor < $1.0.cursor }
        let newCursor = newest?.0.cursor
        let anchor: ChangeSetHash? = if case .success(let changeSet)? = newest?.1 { changeSet.hash } else { nil }
        let signatures = environment.verifier.begin(parsed.map { result in
            guard case .success(let changeSet) = result, let key = log.writerKey(changeSet.header.author) else { return nil }
            return SignatureCheck(changeSet: changeSet, key: key)
        })
        defer { signatures.finish() }
        // Left over only if an earlier transaction failed: those positions were never stored
        // with their change sets and must not be written now.
        ledger.discardUnsaved()
        heardInBatch = []
        try store.write { tx in
            for (index, (item, parsedItem)) in zip(items, parsed).enumerated() {
                let changeSet: ChangeSet
                switch parsedItem {
                case .success(let value): changeSet = value
                case .failure(let error):
                    try reject(item.wire, hash: nil, SecurityEvent(.malformedRecord, detail: error.message), tx, &output)
                    continue
                }
                let verified = signatures.isValid(index) ? VerifiedSignature(changeSet) : nil
                if try process(changeSet, verified: verified, tx, &output, now: now) {
                    let key = ChainKey(conversation: changeSet.header.conversation, author: changeSet.header.author)
                    try retryHeld(after: key, tx, &output, now: now)
                }
            }
            try ledger.saveChains(tx)
            if let newCursor { try Ledger.advanceCursor(to: newCursor, anchor: anchor, tx) }
            for author in heardInBatch { try tx.setHeard(author, at: now) }
            try documents.saveIfDue(every: configuration.saveStateEvery, cipher: cipher, tx)
        }
        output.gaps = Ledger.coalesce(output.gaps)
        return output
    }

    /// Classifies and handles one change set; true if it was accepted (so held change sets of
    /// its chain may now follow). Never recurses: callers drain held change sets iteratively,
    /// so a long chain cannot exhaust the stack (ADV-29).
    @discardableResult
    func process(
        _ changeSet: ChangeSet, verified: VerifiedSignature?, _ tx: any StoreTransaction, _ output: inout CoreOutput,
        now: UInt64
    ) throws -> Bool {
        guard let log = membership.log else { return false }
        let header = changeSet.header
        let keyring = membership.keyring
        let verdict = ledger.verdict(
            for: changeSet, log: log, signatureVerified: verified == VerifiedSignature(changeSet),
            hasKey: { keyring.has(conversation: $0, epoch: $1) }, tx)
        switch verdict {
        case .duplicate:
            return false
        case .reject(let kind, let detail):
            if kind == .fork {
                try ledger.markForked(ChainKey(conversation: header.conversation, author: header.author), tx)
            }
            let event = SecurityEvent(kind, conversation: header.conversation, device: header.author, seq: header.seq, detail: detail)
            try reject(changeSet.wire, hash: changeSet.hash, event, tx, &output)
            return false
        case .hold(let reason):
            // Admission holds a change set of a listed author only after its signature verified
            // (an unlisted author's is held before: no key to check it with yet).
            // Admission holds a listed author's change set only after its signature verified
            // (an unlisted author's is held before: there is no key to check it with yet).
            let isNew = try ledger.hold(
                changeSet, reason: reason, verifiedWith: log.writerKey(header.author), now: now,
                limits: (configuration.maxHeldChangeSets, configuration.maxHeldBytes), tx)
            switch reason {
            case .deviceLog(let index):
                // A member's signed header names a log entry this device lacks: its log is stale
                // until it has it (an unknown author's unverified claim only asks for the log).
                if log.writerKey(header.author) != nil { membership.require(logLength: index + 1) }
                output.fetchDeviceLog = true
            case .epochKey: output.fetchKeyEnvelopes = true
            case .gap(let expected):
                if isNew {
                    output.gaps.append(GapRequest(
                        conversation: header.conversation, author: header.author, fromSeq: expected, toSeq: header.seq - 1))
                }
            }
            return false
        case .accept:
            return try accept(changeSet, tx, &output, now: now)
        }
    }

    /// §9 steps 5–7: decrypt, check the operations and the heads, then apply and record.
    private func accept(_ changeSet: ChangeSet, _ tx: any StoreTransaction, _ output: inout CoreOutput, now: UInt64) throws
        -> Bool
    {
        let header = changeSet.header
        let body: Cloak_V1_ChangeSetBody
        let ops: [CRDTOperation]
        do { (body, ops) = try decrypt(changeSet) } catch {
            let kind: SecurityEvent.Kind = if case .crypto = error { .decryptionFailed } else { .undecodableOperations }
            let event = SecurityEvent(kind, conversation: header.conversation, device: header.author, seq: header.seq)
            try reject(changeSet.wire, hash: changeSet.hash, event, tx, &output)
            return try passRefused(changeSet, tx)
        }
        // Operation ids carry their author's replica id; a member may not write as another.
        let author = header.author.replicaID
        guard ops.allSatisfy({ $0.id.replica == author }) else {
            let event = SecurityEvent(
                .undecodableOperations, conversation: header.conversation, device: header.author, seq: header.seq,
                detail: "operations claim another author")
            try reject(changeSet.wire, hash: changeSet.hash, event, tx, &output)
            return try passRefused(changeSet, tx)
        }
        // An assistant writes only its own assistant/tool messages, before its expiry (§29).
        if let assistant = membership.log?.assistants[header.author],
            let terms = assistant.terms(atIndex: header.deviceLogIndex),
            let violation = AssistantRights.violation(ops, author: author, expiresAtMs: terms.expiresAtMs)
        {
            let event = SecurityEvent(
                violation.kind, conversation: header.conversation, device: header.author, seq: header.seq,
                detail: violation.detail)
            try reject(changeSet.wire, hash: changeSet.hash, event, tx, &output)
            return try passRefused(changeSet, tx)
        }
        let claims = body.heads.compactMap { try? ChainHead(message: $0) }
        for event in try ledger.checkHeads(changeSet, claims: claims, tx) { try raise(event, tx, &output) }
        let report = documents.apply(ops, to: header.conversation, now: now)
        outbox.replica.observe(report.newestTimestamp, physicalMillis: now)
        for rejection in report.rejected where rejection.reason == .reusedOperationID {
            try raise(SecurityEvent(
                .reusedOperationID, conversation: header.conversation, device: header.author, seq: header.seq,
                detail: "an operation reuses operation ids its author already used with other content; refused"), tx, &output)
        }
        for deferral in report.deferred {
            try raise(SecurityEvent(
                .clockSkew, conversation: header.conversation, device: header.author, seq: header.seq,
                detail: "an operation is stamped \(deferral.timestamp.millis &- now) ms ahead; it applies from "
                    + "\(deferral.dueMillis)"), tx, &output)
        }
        try ledger.record(changeSet, local: header.author == me, tx)
        heard[header.author] = now
        heardInBatch.insert(header.author)
        output.changed.insert(header.conversation)
        return true
    }

    /// Re-examines held change sets of one chain after it advanced (or, with nil, all of them
    /// after the device log or the keyring changed), until none makes progress.
    func retryHeld(after key: ChainKey?, _ tx: any StoreTransaction, _ output: inout CoreOutput, now: UInt64) throws {
        if key == nil { ledger.discardUnsaved() }  // see receive(_:)
        var progress = true
        while progress {
            progress = false
            for candidate in try ledger.takeHeld(of: key, tx) {
                var inner = CoreOutput()
                let verified = candidate.verifiedWith != nil
                    && candidate.verifiedWith == membership.log?.writerKey(candidate.changeSet.header.author)
                if try process(
                    candidate.changeSet, verified: verified ? VerifiedSignature(candidate.changeSet) : nil, tx, &inner,
                    now: now)
                {
                    progress = true
                    if key == nil { output.acceptedHeld = true }
                }
                inner.gaps = []  // already requested when first held
                output.merge(inner)
            }
        }
        // Called with nil from outside a receive batch (log or keys changed): nothing else
        // will write the chains this accepted.
        if key == nil { try ledger.saveChains(tx) }
    }
}
