public import CloakProtocol
import Logging
import Metrics
import OrderedCollections
import Synchronization

/// A reply that waits for a group commit.
enum Completion {
    case pushAck(ConnectionID, requestID: UInt64, results: [Cloak_V1_PushResult])
    case done(ConnectionID, requestID: UInt64)
    /// A reply with a body (a recovery evaluation, answered only once its guess is counted).
    case reply(ConnectionID, requestID: UInt64, body: Cloak_V1_Frame.OneOf_Body)
    /// An AccountNotice to the account's device sessions (not `except`) once the rows are durable.
    case notice(AccountID, Cloak_V1_AccountNotice, except: ConnectionID?)
}

/// A reply and the account whose rows it waits for (a version conflict fails that account's
/// replies only).
struct Waiting {
    var account: AccountID
    var completion: Completion
    /// Its rows depend on the cached account state (see ``SyncRegistry/stage``). Unversioned
    /// rows (mailbox slots, cursor acknowledgements) are written whatever the account's version,
    /// so a version conflict neither drops them nor fails their replies.
    var versioned = true
}

/// A change set to fan out once its batch is durable.
struct FanoutItem {
    var cursor: UInt64
    var conversation: ConversationID?
    var origin: ConnectionID
    var bytes: [UInt8]
}

/// The rows and replies of one group commit.
struct PendingBatch {
    let id: UInt64
    var batch = WriteBatch()
    var completions: [Waiting] = []
    var fanout: [AccountID: [FanoutItem]] = [:]
    var rowsByAccount: [AccountID: Int] = [:]
    /// The part of ``rowsByAccount`` that is unversioned (kept through a version conflict).
    var unversionedRows: [AccountID: Int] = [:]

    init(id: UInt64) {
        self.id = id
    }

    var isEmpty: Bool { batch.isEmpty && completions.isEmpty }

    /// Takes `accounts`' versioned rows, their replies and fanout out of the batch (a version
    /// conflict); returns the replies. Unversioned rows and their replies stay.
    mutating func remove(_ accounts: Set<AccountID>) -> [Waiting] {
        batch = batch.removing(accounts)
        func gone(_ waiting: Waiting) -> Bool { waiting.versioned && accounts.contains(waiting.account) }
        let (removed, kept) = (completions.filter(gone), completions.filter { !gone($0) })
        completions = kept
        for account in accounts {
            fanout[account] = nil
            rowsByAccount[account] = unversionedRows[account]
        }
        return removed
    }
}

extension SyncRegistry {
    /// Takes everything staged since the last commit, unless a commit is still running. The
    /// caller commits the batch and then calls ``finishBatch(_:error:)``; requests that arrive
    /// meanwhile are staged into the next batch (group commit).
    public func takeBatch() -> (id: UInt64, batch: WriteBatch)? {
        state.withLock { s in
            guard s.inFlight == nil, !s.pending.isEmpty else { return nil }
            let batch = s.pending
            s.inFlight = batch
            s.pending = PendingBatch(id: s.nextBatchID)
            s.nextBatchID += 1
            return (batch.id, batch.batch)
        }
    }

    /// Whether anything is staged or committing (graceful shutdown waits for this to clear).
    public var hasUncommittedWrites: Bool {
        state.withLock { !$0.pending.isEmpty || $0.inFlight != nil }
    }

    /// Reports the outcome of the commit of batch `id`. On success the waiting replies are
    /// sent and the new change sets fan out to the account's live subscribers; on failure
    /// every waiting reply (of this batch and of the one staged behind it, which may build on
    /// it) gets INTERNAL and the accounts involved reload from the store before their next
    /// request. Nothing unacknowledged is lost: clients re-push.
    ///
    /// `conflicts` are the accounts whose version check failed (a shared store: another
    /// process wrote them since this one read them). Their versioned rows were not written;
    /// the replies waiting for those in this batch and the next get INTERNAL, and the accounts
    /// reload before their next request. Their mailbox slots and cursor acknowledgements were
    /// written and are answered as usual.
    public func finishBatch(_ id: UInt64, error: StoreError?, conflicts: Set<AccountID> = []) {
        state.withLock { s in
            guard var batch = s.inFlight, batch.id == id else { return }
            s.inFlight = nil
            if let error {
                fail(batch, error: error, in: &s)
                let behind = s.pending
                s.pending = PendingBatch(id: s.nextBatchID)
                s.nextBatchID += 1
                fail(behind, error: error, in: &s)
                return
            }
            s.storeFailing = false
            if !conflicts.isEmpty { drop(conflicts, from: &batch, in: &s) }
            metrics.commitRows.record(batch.batch.rowCount)
            metrics.changeSetsAccepted.increment(by: batch.batch.changeSets.count)
            settle(batch, in: &s)
            for waiting in batch.completions { complete(waiting.completion, in: &s) }
            for (account, items) in batch.fanout { fanOutCommitted(items, account: account, in: &s) }
            for account in batch.rowsByAccount.keys { s.evictIfIdle(account) }
            if !s.pending.isEmpty { output.commitNeeded() }
        }
    }

    /// Marks the batch's rows committed, one account at a time and in place: reading
    /// `s.accounts[id]?.committedHead` per row copied the whole account state each time.
    private func settle(_ batch: PendingBatch, in s: inout RegistryState) {
        var byAccount: [AccountID: [WriteBatch.ChangeSetRow]] = [:]
        for row in batch.batch.changeSets { byAccount[row.account, default: []].append(row) }
        for (account, rows) in byAccount { s.accounts[account]?.settle(rows, batch: batch.id) }
        for (account, check) in batch.batch.accountVersions {
            if let known = s.accounts[account]?.storeVersion { s.accounts[account]?.storeVersion = max(known, check.next) }
        }
        for (account, rows) in batch.rowsByAccount {
            s.accounts[account]?.pendingWrites -= rows
            // Another process's commit (or a fanout read that found the log behind) waited for
            // these writes: reload, and read what the subscribers have not been sent.
            if let state = s.accounts[account], state.pendingWrites == 0,
                state.remoteChanged || state.fanoutNeedsAccount
            {
                s.accounts[account]?.remoteChanged = false
                s.accounts[account]?.needsReload = true
                if !state.connections.isEmpty { requestFanoutRead(account, in: &s) }
            }
        }
    }

    /// Takes the accounts whose version check failed out of the committed batch and out of
    /// the one staged behind it (which builds on it), answers their replies with INTERNAL and
    /// marks them for reload. Nothing of theirs was acknowledged; their clients retry.
    private func drop(_ conflicts: Set<AccountID>, from batch: inout PendingBatch, in s: inout RegistryState) {
        logger.notice(
            "accounts changed by another server process; their requests get INTERNAL and are retried",
            metadata: ["accounts": "\(conflicts.count)", "batch": "\(batch.id)"])
        metrics.versionConflicts.increment(by: conflicts.count)
        let failed = batch.remove(conflicts) + s.pending.remove(conflicts)
        for account in conflicts {
            s.accounts[account]?.needsReload = true
            // What is left of the account in either batch is unversioned and still commits.
            s.accounts[account]?.pendingWrites =
                (batch.rowsByAccount[account] ?? 0) + (s.pending.rowsByAccount[account] ?? 0)
            s.accounts[account]?.remoteChanged = false
            s.accounts[account]?.staged = [:]
        }
        for waiting in failed { failReply(waiting.completion) }
        for account in conflicts { s.evictIfIdle(account) }
    }

    private func fail(_ batch: PendingBatch, error: StoreError, in s: inout RegistryState) {
        guard !batch.isEmpty else { return }
        logStoreFailure("a group commit failed; its requests get INTERNAL and are retried", error, batch: batch.id, in: &s)
        for account in batch.rowsByAccount.keys {
            s.accounts[account]?.needsReload = true
            s.accounts[account]?.pendingWrites = 0
            s.accounts[account]?.staged = [:]
        }
        for waiting in batch.completions { failReply(waiting.completion) }
        for account in batch.rowsByAccount.keys { s.evictIfIdle(account) }
    }

    /// A reply whose rows were not written gets INTERNAL (the client retries); a notice is dropped.
    private func failReply(_ completion: Completion) {
        switch completion {
        case .pushAck(let connection, let requestID, _), .done(let connection, let requestID),
            .reply(let connection, let requestID, _):
            reject(connection, .internalError, requestID: requestID)
        case .notice:
            break
        }
    }

    private func complete(_ completion: Completion, in s: inout RegistryState) {
        switch completion {
        case .pushAck(let connection, let requestID, let results):
            var ack = Cloak_V1_PushAck()
            ack.results = results
            metrics.acks.increment()
            output.send(FrameCodec.encode(.pushAck(ack), requestID: requestID), to: connection)
        case .done(let connection, let requestID):
            output.send(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: requestID), to: connection)
        case .reply(let connection, let requestID, let body):
            output.send(FrameCodec.encode(body, requestID: requestID), to: connection)
        case .notice(let account, let notice, let except):
            sendNotice(notice, to: account, except: except, in: &s)
        }
    }

    /// Live delivery of a local commit. Sent from memory when it continues what the subscribers
    /// were sent; otherwise (a shared store, behind change sets another process committed) a
    /// fanout read sends it in cursor order with what precedes it.
    private func fanOutCommitted(_ items: [FanoutItem], account: AccountID, in s: inout RegistryState) {
        // Scalars only: a copy of the account alive while `localOrigins` is written below would
        // make that dictionary copy itself whole for every item.
        guard let deliveredHead = s.accounts[account]?.deliveredHead, let reading = s.accounts[account]?.fanoutReading,
            let first = items.first, let last = items.last
        else { return }
        if !configuration.sharedStore || (!reading && first.cursor == deliveredHead + 1) {
            s.accounts[account]?.deliveredHead = max(deliveredHead, last.cursor)
            fanOut(items, account: account, in: &s)
        } else {
            for item in items { s.accounts[account]?.localOrigins[item.cursor] = item.origin }
            requestFanoutRead(account, in: &s)
        }
    }

    /// Live delivery: every other live subscriber of the account gets the new change sets it
    /// subscribed to, as they were stored. Frames for the common case (no filter, not the
    /// pusher) are encoded once and handed over once for all those subscribers.
    func fanOut(_ items: [FanoutItem], account: AccountID, in s: inout RegistryState) {
        guard let subscribers = s.accounts[account]?.subscribers, !subscribers.isEmpty else { return }
        var everything: [ConnectionID] = []
        everything.reserveCapacity(subscribers.count)
        var delivered = 0
        // In the order the subscribers first subscribed, not a hash order: each fanout writes
        // its sockets in one stable order, so receivers wake in the order they were last served
        // (measured: about 1 µs of CPU per delivery on loopback), and a run is reproducible.
        for (connection, subscription) in subscribers where subscription.live {
            func wants(_ item: FanoutItem) -> Bool {
                item.origin != connection && item.cursor > subscription.after && subscription.wants(item.conversation)
            }
            // Checked without building an array: nearly every subscriber wants everything.
            if items.allSatisfy(wants) {
                everything.append(connection)
                continue
            }
            let wanted = items.filter(wants)
            guard !wanted.isEmpty else { continue }
            delivered += wanted.count
            for frame in deliverFrames(wanted.map { StoredChangeSet(cursor: $0.cursor, bytes: $0.bytes) }) {
                output.deliver(frame, to: [connection])
            }
        }
        if !everything.isEmpty {
            delivered += items.count * everything.count
            for frame in deliverFrames(items.map { StoredChangeSet(cursor: $0.cursor, bytes: $0.bytes) }) {
                output.deliver(frame, to: everything)
            }
        }
        metrics.deliveries.increment(by: delivered)
    }

    /// Live Deliver frames (request id 0, caught_up true), each within the frame budget.
    func deliverFrames(_ items: [StoredChangeSet]) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var chunk: [StoredChangeSet] = []
        var bytes = 0
        for item in items {
            let size = DeliverEncoder.encodedSize(of: item)
            if !chunk.isEmpty, bytes + size > configuration.framePayloadBudget {
                frames.append(DeliverEncoder.encode(requestID: 0, items: chunk, caughtUp: true))
                chunk = []
                bytes = 0
            }
            chunk.append(item)
            bytes += size
        }
        if !chunk.isEmpty { frames.append(DeliverEncoder.encode(requestID: 0, items: chunk, caughtUp: true)) }
        return frames
    }

    // MARK: Catch-up hand-off

    /// Starts (or restarts) a subscription: live fanout pauses for this connection, and the
    /// returned committed head is how far its catch-up reads must go.
    func beginCatchUp(_ connection: ConnectionID, conversations: Set<ConversationID>, after: UInt64, scoped: Bool = false)
        -> UInt64?
    {
        state.withLock { s in
            guard let session = s.connections[connection]?.session, s.connections[connection]?.closed == false,
                s.accounts[session.account] != nil
            else { return nil }
            // Only a shared store can have sent less than a subscriber claims to have; in one
            // process live fanout behaves as it always did.
            s.accounts[session.account]?.subscribers[connection] = Subscription(
                conversations: conversations, scoped: scoped, live: false, after: configuration.sharedStore ? after : 0)
            // Another process may have committed past what this one delivered, with no
            // notification since: a fanout read sends it once the subscriber is live.
            if configuration.sharedStore { requestFanoutRead(session.account, in: &s) }
            return s.accounts[session.account]?.deliveredHead
        }
    }

    /// Called with the last catch-up page read up to `through`. If more was committed
    /// meanwhile, returns the new head and the caller keeps reading (sending `page` as not yet
    /// caught up); otherwise sends `page` with `caught_up` and switches the subscription to
    /// live in the same critical section, so no later commit can slip between them.
    func finishCatchUp(_ connection: ConnectionID, requestID: UInt64, through: UInt64, page: [StoredChangeSet])
        -> UInt64?
    {
        state.withLock { s in
            // Scalars only: a copy of the account alive while the subscription is written below
            // would make the subscriber table copy itself whole on every catch-up.
            guard let session = s.connections[connection]?.session,
                let deliveredHead = s.accounts[session.account]?.deliveredHead,
                let after = s.accounts[session.account]?.subscribers[connection]?.after
            else { return nil }
            if deliveredHead > through { return deliveredHead }
            s.accounts[session.account]?.subscribers[connection]?.live = true
            if configuration.sharedStore, after < through {
                s.accounts[session.account]?.subscribers[connection]?.after = through
            }
            metrics.deliveries.increment(by: page.count)
            output.send(DeliverEncoder.encode(requestID: requestID, items: page, caughtUp: true), to: connection)
            return nil
        }
    }

    // MARK: Staging

    /// Adds rows and a waiting reply to the pending batch, pinning the account until they commit.
    /// `versioned` rows depend on the cached account state (a shared store checks the account's
    /// version for them); mailbox slots and cursor acknowledgements do not.
    func stage(
        account: AccountID, rows: Int, completion: Completion?, versioned: Bool = true, in s: inout RegistryState,
        _ add: (inout PendingBatch) -> Void
    ) {
        add(&s.pending)
        if let completion {
            s.pending.completions.append(Waiting(account: account, completion: completion, versioned: versioned))
        }
        if !versioned { s.pending.unversionedRows[account, default: 0] += rows }
        if configuration.sharedStore, versioned, s.pending.batch.accountVersions[account] == nil,
            let version = s.accounts[account]?.version
        {
            s.pending.batch.accountVersions[account] = WriteBatch.VersionCheck(expected: version, next: version + 1)
            s.accounts[account]?.version = version + 1
        }
        s.pending.rowsByAccount[account, default: 0] += rows
        s.accounts[account]?.pendingWrites += rows
        output.commitNeeded()
    }
}

extension ServerOutput {
    /// Live deliveries go through ``send(_:to:)`` unless the output handles them separately.
    public func deliver(_ frame: [UInt8], to connections: [ConnectionID]) {
        for connection in connections { send(frame, to: connection) }
    }
}
