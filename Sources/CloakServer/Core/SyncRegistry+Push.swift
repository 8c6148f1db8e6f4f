import CloakProtocol
import Logging
import Metrics
import Synchronization
import Foundation

/// A pushed change set after the checks that need no account state (size, shape, account,
/// author, device-log head, signature).
struct PreparedItem: Sendable {
    var hash: ChangeSetHash?
    var changeSet: ChangeSet?
    var error: ProtocolError?
    /// Written under a device-log head older than the newest removal. Decided after the
    /// duplicate check: a change set stored before the removal whose ack was lost is still
    /// acknowledged as a duplicate, so the client never re-seals something already stored.
    var staleDeviceLog = false
}

/// What staging a push needs next.
enum PushStaging {
    /// Staged (or answered): nothing more to do.
    case staged
    /// The account must be reloaded first (a commit failed meanwhile): answer INTERNAL.
    case failed(ProtocolError)
    /// These positions lie behind the chain heads and are not in memory: read their stored
    /// cursor and hash, then stage again (duplicate or fork?).
    case needsLookup([ChainSeq])
    /// Shared store: an answer was decided against a cached account that another process has
    /// moved on (the store holds what the cache does not). Reload the account (it is marked)
    /// and run the push again.
    case needsReload
    /// These items' hashes are stored with other bytes: judge each stored copy against the
    /// pushed one (signature checks, outside the lock), then stage again with the verdicts.
    case needsJudgement([DisagreeingCopy])
}

/// A stored change set and a pushed copy with the same hash but other bytes.
struct DisagreeingCopy: Sendable {
    let position: ChainSeq
    let stored: [UInt8]
    let pushed: ChangeSet
}

extension SyncRegistry {
    /// Takes a token from the device's push bucket (PROTOCOL.md: pushes per second per device).
    func takePushToken(_ session: Session, nowMs: UInt64) -> Bool {
        state.withLock { s in
            guard s.accounts[session.account] != nil else { return true }
            var bucket =
                s.accounts[session.account]?.pushBuckets[session.device]
                ?? TokenBucket(ratePerSecond: configuration.limits.maxPushesPerSecond, nowMs: nowMs)
            let allowed = bucket.take(nowMs: nowMs)
            s.accounts[session.account]?.pushBuckets[session.device] = bucket
            return allowed
        }
    }

    /// Runs the chain checks of a push in order (later items may build on earlier ones),
    /// assigns cursors and stages the accepted change sets. The PushAck waits for the commit
    /// of everything it acknowledges, including duplicates of change sets still committing.
    ///
    /// With a shared store, a GAP or FORK decided against a cached chain head is answered only
    /// after the store was asked for the position after that head (`looked`): if it holds a
    /// change set there, another process moved the chain on and the account is reloaded first
    /// (or, while this process has writes of it in flight, the push gets INTERNAL and the
    /// account reloads after them). QUOTA_EXCEEDED is re-checked by a reload when nothing is
    /// in flight. A `fresh` account was just read for this request.
    func stagePush(
        _ connection: ConnectionID, session: Session, requestID: UInt64, items: [PreparedItem],
        known: [ChainSeq: StoredChangeSetRef], looked: Set<ChainSeq> = [], verdicts: [ChainSeq: CopyVerdict] = [:],
        fresh: Bool = false
    ) -> PushStaging {
        state.withLock { s in
            guard s.connections[connection]?.closed == false else { return .staged }
            let planned = plan(
                items, account: session.account, known: known, looked: looked, verdicts: verdicts, fresh: fresh, in: s)
            switch planned {
            case .decided(let staging):
                return staging
            case .reload:
                s.accounts[session.account]?.needsReload = true
                return .needsReload
            case .remoteChanged:
                s.accounts[session.account]?.remoteChanged = true
                return .failed(.internalError)
            case .apply(let plan):
                apply(plan, connection: connection, session: session, requestID: requestID, in: &s)
                return .staged
            }
        }
    }

    private enum Planned {
        case decided(PushStaging)
        /// Decided against a cached account another process may have moved on, with none of
        /// this process's writes of it in flight: reload it and run the push again.
        case reload
        /// Another process moved a chain on while this one has writes of the account in
        /// flight: INTERNAL now, and the account reloads after them.
        case remoteChanged
        case apply(PushPlan.Outcome)
    }

    /// Works out a push against the account without changing anything. Only its outcome
    /// leaves this function, not the copy of the account it was checked against: a copy still
    /// alive when ``apply`` writes the account's chains and staged refs would make each of
    /// those dictionaries copy itself whole (copy-on-write), once per push.
    private func plan(
        _ items: [PreparedItem], account id: AccountID, known: [ChainSeq: StoredChangeSetRef], looked: Set<ChainSeq>,
        verdicts: [ChainSeq: CopyVerdict], fresh: Bool, in s: borrowing RegistryState
    ) -> Planned {
        guard let account = s.accounts[id], !account.needsReload else { return .decided(.failed(.internalError)) }
        var plan = PushPlan(
            account: account, pendingID: s.pending.id, limit: configuration.limits.maxAccountBytes, capacity: items.count,
            verdicts: verdicts, totalRoom: totalRoom(in: s))
        for item in items { plan.check(item, known: known) }
        guard plan.lookups.isEmpty else {
            return .decided(.needsLookup(Array(Set(plan.lookups)).sorted { $0.seq < $1.seq }))
        }
        guard plan.disagreements.isEmpty else { return .decided(.needsJudgement(plan.disagreements)) }
        if configuration.sharedStore, !fresh {
            let unchecked = plan.cachedHeads.filter { !looked.contains($0) }
            if !unchecked.isEmpty { return .decided(.needsLookup(Array(Set(unchecked)).sorted { $0.seq < $1.seq })) }
            let moved = plan.cachedHeads.contains { known[$0] != nil }
            if moved || plan.cachedQuota {
                if account.pendingWrites == 0 { return .reload }
                if moved { return .remoteChanged }
            }
        }
        return .apply(plan.outcome)
    }

    private func apply(
        _ plan: PushPlan.Outcome, connection: ConnectionID, session: Session, requestID: UInt64,
        in s: inout RegistryState
    ) {
        let id = session.account
        for (key, position) in plan.chains { s.accounts[id]?.chains[key] = position }
        for (key, ref) in plan.staged { s.accounts[id]?.staged[key] = ref }
        s.accounts[id]?.assignedHead += UInt64(plan.rows.count)
        s.accounts[id]?.storedBytes += plan.bytes
        s.totalStoredBytes += plan.bytes
        let completion = Completion.pushAck(connection, requestID: requestID, results: plan.results)
        if !plan.rows.isEmpty || !plan.replacements.isEmpty {
            stage(account: id, rows: plan.rows.count + plan.replacements.count, completion: completion, in: &s) { pending in
                pending.batch.replacements += plan.replacements
                for row in plan.rows {
                    pending.batch.changeSets.append(row)
                    pending.fanout[id, default: []].append(
                        FanoutItem(cursor: row.cursor, conversation: row.chain.conversation, origin: connection, bytes: row.bytes))
                }
            }
        } else if let wait = plan.waitFor, wait == s.pending.id {
            s.pending.completions.append(Waiting(account: id, completion: completion))
        } else if let wait = plan.waitFor, wait == s.inFlight?.id {
            s.inFlight?.completions.append(Waiting(account: id, completion: completion))
        } else {
            metrics.acks.increment()
            var ack = Cloak_V1_PushAck()
            ack.results = plan.results
            output.send(FrameCodec.encode(.pushAck(ack), requestID: requestID), to: connection)
        }
    }
}

/// The chain checks of one push, worked out against an overlay of the account so nothing
/// changes unless the whole push can be decided.
struct PushPlan {
    let account: AccountState
    let pendingID: UInt64
    let limit: Int64
    /// Bytes all accounts together may still add (``ServerConfiguration/maxTotalStoredBytes``).
    let totalRoom: Int64
    var chains: [ChainKey: ChainPosition] = [:]
    var staged: [ChainSeq: StagedRef] = [:]
    var rows: [WriteBatch.ChangeSetRow] = []
    var bytes: Int64 = 0
    var results: [Cloak_V1_PushResult] = []
    var lookups: [ChainSeq] = []
    /// Verdicts on stored copies that disagree with pushed ones (judged outside the lock).
    let verdicts: [ChainSeq: CopyVerdict]
    /// Pushed copies whose stored copy has the same hash but other bytes and no verdict yet.
    var disagreements: [DisagreeingCopy] = []
    /// Badly signed stored copies that verifying pushed copies replace.
    var replacements: [WriteBatch.ReplacementRow] = []
    /// The newest batch a result depends on (the ack waits for it).
    var waitFor: UInt64?
    /// The position after each chain head a GAP or FORK was decided against (held in memory;
    /// another process sharing the store may have filled it).
    var cachedHeads: [ChainSeq] = []
    /// A QUOTA_EXCEEDED was decided against the cached byte count.
    var cachedQuota = false

    /// What ``SyncRegistry`` applies to the account: everything but the account itself.
    struct Outcome {
        var chains: [ChainKey: ChainPosition]
        var staged: [ChainSeq: StagedRef]
        var rows: [WriteBatch.ChangeSetRow]
        var replacements: [WriteBatch.ReplacementRow]
        var bytes: Int64
        var results: [Cloak_V1_PushResult]
        var waitFor: UInt64?
    }

    var outcome: Outcome {
        Outcome(
            chains: chains, staged: staged, rows: rows, replacements: replacements, bytes: bytes, results: results,
            waitFor: waitFor)
    }

    /// `capacity`: the push's change-set count (room for every result, row and staged ref up
    /// front, instead of growing one at a time).
    init(
        account: AccountState, pendingID: UInt64, limit: Int64, capacity: Int, verdicts: [ChainSeq: CopyVerdict] = [:],
        totalRoom: Int64 = .max
    ) {
        self.account = account
        self.pendingID = pendingID
        self.limit = limit
        self.verdicts = verdicts
        self.totalRoom = totalRoom
        staged.reserveCapacity(capacity)
        rows.reserveCapacity(capacity)
        results.reserveCapacity(capacity)
    }

    mutating func check(_ item: PreparedItem, known: [ChainSeq: StoredChangeSetRef]) {
        var result = Cloak_V1_PushResult()
        if let hash = item.hash { result.hash = hash.data }
        guard let changeSet = item.changeSet else {
            result.error = (item.error ?? .invalidField("change set")).wireCode
            results.append(result)
            return
        }
        switch decide(changeSet, stale: item.staleDeviceLog, known: known) {
        case .accepted(let cursor):
            result.cursor = cursor
        case .duplicate(let cursor, let batch):
            result.cursor = cursor
            result.duplicate = true
            if let batch { waitFor = max(waitFor ?? 0, batch) }
        case .rejected(let error):
            result.error = error.wireCode
        case .lookup(let position):
            lookups.append(position)
        case .judge(let copy):
            disagreements.append(copy)
        }
        results.append(result)
    }

    private enum Decision {
        case accepted(cursor: UInt64)
        case duplicate(cursor: UInt64, batch: UInt64?)
        case rejected(ProtocolError)
        case lookup(ChainSeq)
        case judge(DisagreeingCopy)
    }

    private mutating func decide(_ cs: ChangeSet, stale: Bool, known: [ChainSeq: StoredChangeSetRef]) -> Decision {
        let key = ChainKey(conversation: cs.header.conversation, author: cs.header.author)
        let head = chains[key] ?? account.chains[key]
        let last = head?.seq ?? 0
        let seq = cs.header.seq
        let position = ChainSeq(chain: key, seq: seq)
        if seq <= last {
            if let ref = staged[position] ?? account.staged[position] {
                guard ref.hash == cs.hash else { return .rejected(.fork("seq \(seq) holds another change set")) }
                return duplicate(cs, at: position, cursor: ref.cursor, batch: ref.batch, stored: ref.bytes)
            }
            if let ref = known[position] {
                guard ref.hash == cs.hash else { return .rejected(.fork("seq \(seq) holds another change set")) }
                return duplicate(cs, at: position, cursor: ref.cursor, batch: nil, stored: ref.bytes)
            }
            return .lookup(position)
        }
        guard !stale else { return .rejected(.staleDeviceLog) }
        guard seq == last + 1 else {
            cachedHeads.append(ChainSeq(chain: key, seq: last + 1))
            return .rejected(.gap(expectedSeq: last + 1, got: seq))
        }
        guard cs.header.prevHash == (head?.hash ?? .zero) else {
            cachedHeads.append(ChainSeq(chain: key, seq: last + 1))
            return .rejected(.fork("prev_hash does not match the stored seq \(last)"))
        }
        let size = Int64(cs.wire.count)
        guard account.storedBytes + bytes + size <= limit else {
            cachedQuota = true
            return .rejected(.quotaExceeded)
        }
        guard bytes + size <= totalRoom else { return .rejected(.quotaExceeded) }
        let cursor = account.assignedHead + UInt64(rows.count) + 1
        chains[key] = ChainPosition(seq: seq, hash: cs.hash)
        staged[position] = StagedRef(cursor: cursor, hash: cs.hash, batch: pendingID, bytes: cs.wire)
        rows.append(
            WriteBatch.ChangeSetRow(
                account: cs.header.account, cursor: cursor, chain: key, seq: seq, hash: cs.hash, bytes: cs.wire))
        bytes += size
        waitFor = max(waitFor ?? 0, pendingID)
        return .accepted(cursor: cursor)
    }

    /// A pushed change set whose hash is stored at `cursor` (PROTOCOL.md §19 step 6, and "a
    /// damaged stored copy"). The same bytes again, or a copy whose bytes compaction dropped, is a
    /// plain duplicate. Other bytes need a verdict first; a verdict to replace stages the pushed
    /// bytes at the same cursor, and the ack waits for that commit.
    private mutating func duplicate(
        _ cs: ChangeSet, at position: ChainSeq, cursor: UInt64, batch: UInt64?, stored: [UInt8]?
    ) -> Decision {
        guard let stored, stored != cs.wire else { return .duplicate(cursor: cursor, batch: batch) }
        guard let verdict = verdicts[position], verdict.stored == stored else {
            return .judge(DisagreeingCopy(position: position, stored: stored, pushed: cs))
        }
        guard verdict.replace else { return .duplicate(cursor: cursor, batch: batch) }
        replacements.append(
            WriteBatch.ReplacementRow(account: cs.header.account, cursor: cursor, hash: cs.hash, bytes: cs.wire))
        bytes += Int64(cs.wire.count - stored.count)
        waitFor = max(waitFor ?? 0, pendingID)
        return .duplicate(cursor: cursor, batch: batch)
    }
}
