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

/// A Subscribe, kept while its cursor and anchor are checked against the store.
struct SubscribeRequest: Sendable {
    let requestID: UInt64
    let after: UInt64
    let anchor: ChangeSetHash?
    let conversations: Set<ConversationID>
    /// An assistant's subscription: only its scope, never a change set of unknown conversation.
    var scoped = false
}

extension ServerConnection {
    /// Subscribe: the cursor and anchor check, catch-up pages from the store, then live fanout
    /// (PROTOCOL.md §20).
    mutating func subscribe(_ request: Cloak_V1_Subscribe, _ context: RequestContext) throws(Failure) -> StoreRead? {
        var conversations = Set(try conversationFilter(request.conversationIds))
        // An assistant's empty filter means its scope, never "everything" (PROTOCOL.md §29).
        if conversations.isEmpty, let scope = assistantScope(context) { conversations = Set(scope) }
        let anchor: ChangeSetHash?
        do {
            anchor = request.anchorHash.isEmpty ? nil : try ChangeSetHash(validating: request.anchorHash, field: "anchor_hash")
        } catch { throw .request(error) }
        let subscription = SubscribeRequest(
            requestID: context.requestID, after: request.afterCursor, anchor: anchor, conversations: conversations,
            scoped: context.session.isAssistant)
        // Only the store holds the hashes, and the head other processes may have moved: it is
        // asked when there is an anchor or a cursor beyond what this process has seen committed.
        // Without either, a Subscribe costs what it always did.
        let account = context.session.account
        if request.afterCursor > 0, anchor != nil || request.afterCursor > registry.knownHead(account) {
            pending = .anchor(subscription)
            return .cursorAnchor(account, cursor: request.afterCursor)
        }
        return try startCatchUp(subscription)
    }

    /// The anchor check's verdict, once the store answered.
    mutating func anchorChecked(_ subscription: SubscribeRequest, stored: CursorAnchor) throws(Failure) -> StoreRead? {
        if let mismatch = Self.anchorMismatch(after: subscription.after, anchor: subscription.anchor, stored: stored) {
            throw .request(mismatch)
        }
        return try startCatchUp(subscription)
    }

    /// Why a subscriber's cursor or anchor disagrees with the store (nil: it agrees). A cursor
    /// beyond the head names change sets the server no longer has; another hash at the cursor
    /// means the cursor was reused for other content (a restored backup) or the subscriber was
    /// shown another history. No change set at the cursor at all leaves nothing to compare.
    static func anchorMismatch(after: UInt64, anchor: ChangeSetHash?, stored: CursorAnchor) -> ProtocolError? {
        if after > stored.headCursor {
            return .cursorMismatch("after_cursor \(after) is beyond the account's head cursor \(stored.headCursor)")
        }
        if let anchor, let hash = stored.hash, hash != anchor {
            return .cursorMismatch("the change set stored at cursor \(after) is not the anchored one")
        }
        return nil
    }

    private mutating func startCatchUp(_ subscription: SubscribeRequest) throws(Failure) -> StoreRead? {
        guard
            let head = registry.beginCatchUp(
                id, conversations: subscription.conversations, after: subscription.after, scoped: subscription.scoped)
        else { throw .request(.internalError) }
        let catchUp = CatchUp(
            requestID: subscription.requestID, after: subscription.after, through: head,
            conversations: subscription.conversations)
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

    /// FetchHeads: the account's stored chain heads after a key, in (conversation, author) order.
    mutating func fetchHeads(_ request: Cloak_V1_FetchHeads, _ context: RequestContext) throws(Failure) -> StoreRead? {
        let after: ChainKey?
        switch (request.afterConversationID.isEmpty, request.afterAuthor.isEmpty) {
        case (true, true):
            after = nil
        case (false, false):
            do {
                after = ChainKey(
                    conversation: try ConversationID(validating: request.afterConversationID, field: "after_conversation_id"),
                    author: try DeviceID(validating: request.afterAuthor, field: "after_author"))
            } catch { throw .request(error) }
        default:
            throw .request(.invalidField("after_conversation_id and after_author are set together or not at all"))
        }
        let cap = min(
            registry.configuration.limits.maxHeadsPerReply,
            max(1, registry.configuration.framePayloadBudget / HeadsEncoder.maxEncodedHeadBytes))
        let limit = request.limit == 0 ? cap : min(Int(request.limit), cap)
        pending = .heads(requestID: context.requestID, limit: limit)
        // One more than sent: whether it exists says if the reply is complete.
        return .chainHeads(context.session.account, after: after, limit: limit + 1)
    }

    /// FetchSnapshots: the newest snapshot per conversation.
    mutating func fetchSnapshots(_ request: Cloak_V1_FetchSnapshots, _ context: RequestContext) throws(Failure)
        -> StoreRead?
    {
        var conversations = try conversationFilter(request.conversationIds)
        if conversations.isEmpty, let scope = assistantScope(context) { conversations = scope }
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
