import CloakCrypto
import CloakProtocol
import Logging
import Metrics
import Foundation

/// A catch-up in progress: pages of change sets after `after`, up to the committed head
/// `through` promised by the registry.
struct CatchUp: Sendable {
    let requestID: UInt64
    var after: UInt64
    var through: UInt64
    let conversations: Set<ConversationID>
}

/// A push waiting for stored cursors and hashes of positions behind its chains' heads.
struct PushInFlight: Sendable {
    let requestID: UInt64
    let session: Session
    let items: [PreparedItem]
    var known: [ChainSeq: StoredChangeSetRef]
    /// Positions already asked of the store (found or not).
    var looked: Set<ChainSeq> = []
    var rounds: Int
    /// The Push frame, run again after a reload (shared store).
    let frame: Cloak_V1_Frame
    /// The account was read from the store for this request.
    let fresh: Bool
}


extension ServerConnection {
    /// Subscribe: catch-up pages from the store, then live fanout (PROTOCOL.md §"Subscribe").
    mutating func subscribe(_ request: Cloak_V1_Subscribe, _ context: RequestContext) throws(Failure) -> StoreRead? {
        let conversations = try conversationFilter(request.conversationIds)
        guard let head = registry.beginCatchUp(id, conversations: Set(conversations), after: request.afterCursor) else {
            throw .request(.internalError)
        }
        let catchUp = CatchUp(
            requestID: context.requestID, after: request.afterCursor, through: head, conversations: Set(conversations))
        guard catchUp.after < catchUp.through else { return continueCatchUp(catchUp, page: []) }
        return read(catchUp)
    }

    private mutating func read(_ catchUp: CatchUp) -> StoreRead? {
        guard let session = registry.session(id) else { return nil }
        let limits = registry.configuration.limits
        pending = .catchUp(catchUp)
        return .changeSets(
            ChangeSetQuery(
                account: session.account, afterCursor: catchUp.after, throughCursor: catchUp.through,
                conversations: catchUp.conversations, limit: limits.maxCatchUpBatch,
                maxBytes: registry.configuration.framePayloadBudget))
    }

    /// Sends a page and reads the next one, or hands the subscription over to live fanout.
    /// A page is known to be the last when it reached the promised head, or when the store
    /// stopped short of both its row limit and a byte budget that any further row would fit.
    mutating func continueCatchUp(_ catchUp: CatchUp, page: [StoredChangeSet]) -> StoreRead? {
        var next = catchUp
        let limits = registry.configuration.limits
        let bytes = page.reduce(0) { $0 + DeliverEncoder.encodedSize(of: $1) }
        let last = page.last?.cursor ?? catchUp.through
        let exhausted =
            last >= catchUp.through
            || (page.count < limits.maxCatchUpBatch
                && bytes + limits.maxChangeSetBytes + 16 <= registry.configuration.framePayloadBudget)
        if !exhausted {
            registry.metrics.deliveries.increment(by: page.count)
            registry.output.send(DeliverEncoder.encode(requestID: catchUp.requestID, items: page, caughtUp: false), to: id)
            next.after = last
            return read(next)
        }
        guard
            let moved = registry.finishCatchUp(id, requestID: catchUp.requestID, through: catchUp.through, page: page)
        else { return nil }
        if !page.isEmpty {
            registry.metrics.deliveries.increment(by: page.count)
            registry.output.send(DeliverEncoder.encode(requestID: catchUp.requestID, items: page, caughtUp: false), to: id)
        }
        next.after = max(catchUp.through, page.last?.cursor ?? 0)
        next.through = moved
        return read(next)
    }

    /// Push: stateless checks here (outside any lock, signatures too if configured), chain
    /// checks and staging in the registry, the ack after the group commit.
    mutating func push(_ request: Cloak_V1_Push, _ context: RequestContext) throws(Failure) -> StoreRead? {
        let limits = registry.configuration.limits
        guard request.changeSets.count <= limits.maxChangeSetsPerPush else {
            throw .request(.tooManyChangeSets(count: request.changeSets.count, limit: limits.maxChangeSetsPerPush))
        }
        // A push run again after a reload (shared store) already took its token.
        let rerun = context.fresh && registry.configuration.sharedStore
        guard rerun || registry.takePushToken(context.session, nowMs: context.nowMs) else { throw .request(.rateLimited) }
        registry.metrics.pushes.increment()
        let payloads = request.changeSets
        let limit = limits.maxChangeSetBytes
        let verify = registry.configuration.verifyChangeSetSignatures
        // Without signatures to check, parsing a change set costs a few microseconds: less than
        // handing it to another thread.
        let work: any WorkSpreader = verify ? registry.work : SequentialWork()
        let author = PushAuthor(context)
        let items = work.map(payloads.count) { index in
            Self.prepare(Array(payloads[index]), limit: limit, verify: verify, author, context)
        }
        for item in items {
            if let error = item.error { registry.metrics.error(error) }
        }
        let push = PushInFlight(
            requestID: context.requestID, session: context.session, items: items, known: [:], rounds: 0,
            frame: context.frame, fresh: context.fresh)
        return stage(push, adding: [:])
    }

    mutating func stage(_ push: PushInFlight, adding refs: [ChainSeq: StoredChangeSetRef]) -> StoreRead? {
        var next = push
        next.known.merge(refs) { old, _ in old }
        switch registry.stagePush(
            id, session: push.session, requestID: push.requestID, items: push.items, known: next.known,
            looked: next.looked, fresh: push.fresh)
        {
        case .staged:
            return nil
        case .needsReload:
            registry.beginLoad(id, account: push.session.account)
            pending = .load(account: push.session.account, retry: push.frame)
            return .account(push.session.account)
        case .failed(let error):
            registry.reject(id, error, requestID: push.requestID)
            return nil
        case .needsLookup(let positions):
            guard next.rounds < 4 else {
                // Positions behind a chain head that the store does not hold: the account's
                // memory and the store disagree, which only a reload can settle.
                registry.reject(id, .internalError, requestID: push.requestID)
                return nil
            }
            next.rounds += 1
            next.looked.formUnion(positions)
            pending = .push(next)
            return .changeSetRefs(push.session.account, positions)
        }
    }

    private static func prepare(
        _ bytes: [UInt8], limit: Int, verify: Bool, _ author: PushAuthor, _ context: RequestContext
    ) -> PreparedItem {
        guard bytes.count <= limit else {
            return PreparedItem(error: .changeSetTooLarge(size: bytes.count, limit: limit))
        }
        let changeSet: ChangeSet
        do { changeSet = try ChangeSet(wire: bytes) } catch { return PreparedItem(error: error) }
        let header = changeSet.header
        var item = PreparedItem(hash: changeSet.hash)
        guard header.account == context.session.account else {
            item.error = .invalidField("account_id is not the authenticated account")
            return item
        }
        guard header.author == context.session.device else {
            item.error = .wrongAuthor
            return item
        }
        guard let head = context.log.hash(atIndex: header.deviceLogIndex), head == header.deviceLogHead,
            let member = author.member, member.isActive(atIndex: header.deviceLogIndex)
        else {
            item.error = .invalidField("device_log_index/device_log_head do not name a log entry the author was active at")
            return item
        }
        if verify {
            do { try changeSet.verifySignature(member.signingKey) } catch {
                item.error = error
                return item
            }
        }
        item.changeSet = changeSet
        if let removal = author.newestRemoval, header.deviceLogIndex < removal { item.staleDeviceLog = true }
        return item
    }

    /// FetchChangeSets: one author's range, answered with one Deliver.
    mutating func fetchChangeSets(_ request: Cloak_V1_FetchChangeSets, _ context: RequestContext) throws(Failure)
        -> StoreRead?
    {
        let chain: ChainKey
        do {
            chain = ChainKey(
                conversation: try ConversationID(validating: request.conversationID, field: "conversation_id"),
                author: try DeviceID(validating: request.author, field: "author"))
        } catch { throw .request(error) }
        let batch = UInt64(registry.configuration.limits.maxCatchUpBatch)
        guard request.fromSeq >= 1, request.toSeq >= request.fromSeq, request.toSeq - request.fromSeq < batch else {
            throw .request(.invalidField("from_seq…to_seq must be a range of 1 to \(batch) sequence numbers from 1"))
        }
        pending = .fetchChangeSets(requestID: context.requestID)
        return .chainRange(
            context.session.account, chain, request.fromSeq...request.toSeq,
            maxBytes: registry.configuration.framePayloadBudget)
    }

    /// FetchSnapshots: the newest snapshot per conversation.
    mutating func fetchSnapshots(_ request: Cloak_V1_FetchSnapshots, _ context: RequestContext) throws(Failure)
        -> StoreRead?
    {
        let conversations = try conversationFilter(request.conversationIds)
        pending = .snapshots(requestID: context.requestID)
        return .snapshots(context.session.account, conversations)
    }

    func conversationFilter(_ ids: [Data]) throws(Failure) -> [ConversationID] {
        guard ids.count <= registry.configuration.maxConversationFilter else {
            throw .request(.invalidField("more than \(registry.configuration.maxConversationFilter) conversation ids"))
        }
        do {
            return try ids.map { data throws(ProtocolError) in
                try ConversationID(validating: data, field: "conversation_ids")
            }
        } catch { throw .request(error) }
    }
}

/// What every change set of a push is checked against that depends only on its author (the
/// authenticated device: any other author is refused first), looked up once per push rather
/// than once per change set.
struct PushAuthor: Sendable {
    /// The author as a device of the log (nil: not a member, or only as the recovery key).
    let member: DeviceLog.Member?
    /// The index of the log's newest removal: change sets written under an older head are stale.
    let newestRemoval: UInt64?

    init(_ context: RequestContext) {
        member = context.log.members[context.session.device].flatMap { $0.isRecoveryKey ? nil : $0 }
        newestRemoval = context.log.newestRemovalIndex
    }
}
