import CloakCrypto
import CloakProtocol
import Logging
import Metrics

/// A push waiting for stored cursors and hashes of positions behind its chains' heads, or for
/// a judgement of stored copies its items disagree with.
struct PushInFlight: Sendable {
    let requestID: UInt64
    let session: Session
    let items: [PreparedItem]
    var known: [ChainSeq: StoredChangeSetRef]
    /// Positions already asked of the store (found or not).
    var looked: Set<ChainSeq> = []
    /// Stored copies with an item's hash but other bytes, judged outside the registry's lock.
    var verdicts: [ChainSeq: CopyVerdict] = [:]
    var rounds: Int
    /// The Push frame, run again after a reload (shared store).
    let frame: Cloak_V1_Frame
    /// The account was read from the store for this request.
    let fresh: Bool
    /// The device log the push was checked against (authors' keys for judging copies).
    let log: DeviceLog
}

/// Whether a pushed copy replaces the stored copy of the same change set (PROTOCOL.md §19,
/// "a damaged stored copy"): the hash excludes the signature, so two copies can share a hash.
struct CopyVerdict: Sendable {
    /// The stored bytes this verdict was reached on (another copy stored since is judged anew).
    let stored: [UInt8]
    /// The pushed copy's signature verifies with its author's key and the stored one's does not.
    let replace: Bool

    /// Judges a stored copy against a pushed one with the same hash: it checks both signatures
    /// (an Ed25519 verification each, so never under the registry's lock). A stored copy that no
    /// longer parses counts as badly signed; copies whose signatures are the same bytes (they
    /// differ only in encoding) are one change set and nothing is replaced.
    static func judge(stored bytes: [UInt8], pushed: ChangeSet, log: DeviceLog) -> CopyVerdict {
        guard let signingKey = log.writerKey(pushed.header.author) else { return CopyVerdict(stored: bytes, replace: false) }
        let storedSignature: [UInt8]?
        let storedVerifies: Bool
        do {
            let stored = try ChangeSet(wire: bytes)
            storedSignature = stored.signature
            storedVerifies = stored.hash == pushed.hash && verifies(stored, signingKey)
        } catch {
            (storedSignature, storedVerifies) = (nil, false)
        }
        guard storedSignature != pushed.signature else { return CopyVerdict(stored: bytes, replace: false) }
        return CopyVerdict(stored: bytes, replace: !storedVerifies && verifies(pushed, signingKey))
    }

    private static func verifies(_ changeSet: ChangeSet, _ key: Ed25519PublicKey) -> Bool {
        do {
            try changeSet.verifySignature(key)
            return true
        } catch {
            return false
        }
    }
}

extension ServerConnection {
    /// Push: stateless checks here (outside any lock, signatures too if configured or for a
    /// restore push), chain checks and staging in the registry, the ack after the group commit.
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
        let restore = request.restore
        let verify = registry.configuration.verifyChangeSetSignatures || restore
        // Without signatures to check, parsing a change set costs a few microseconds: less than
        // handing it to another thread.
        let work: any WorkSpreader = verify ? registry.work : SequentialWork()
        let author = PushAuthor(context)
        let items = work.map(payloads.count) { index in
            let bytes = Array(payloads[index])
            return restore
                ? Self.prepareRestored(bytes, limit: limit, context)
                : Self.prepare(bytes, limit: limit, verify: verify, author, context)
        }
        for item in items {
            if let error = item.error { registry.metrics.error(error) }
        }
        let push = PushInFlight(
            requestID: context.requestID, session: context.session, items: items, known: [:], rounds: 0,
            frame: context.frame, fresh: context.fresh, log: context.log)
        return stage(push, adding: [:])
    }

    mutating func stage(_ push: PushInFlight, adding refs: [ChainSeq: StoredChangeSetRef]) -> StoreRead? {
        var next = push
        next.known.merge(refs) { old, _ in old }
        switch registry.stagePush(
            id, session: push.session, requestID: push.requestID, items: push.items, known: next.known,
            looked: next.looked, verdicts: next.verdicts, fresh: push.fresh)
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
        case .needsJudgement(let copies):
            // Each round judges the copies stored at that moment; a fifth disagreement means
            // they keep changing under this push (another pusher replacing them): retry later.
            guard next.rounds < 4 else {
                registry.reject(id, .internalError, requestID: push.requestID)
                return nil
            }
            next.rounds += 1
            for copy in copies {
                next.verdicts[copy.position] = CopyVerdict.judge(stored: copy.stored, pushed: copy.pushed, log: push.log)
            }
            return stage(next, adding: [:])
        }
    }

    private static func prepare(
        _ bytes: [UInt8], limit: Int, verify: Bool, _ author: PushAuthor, _ context: RequestContext
    ) -> PreparedItem {
        var (item, parsed) = parse(bytes, limit: limit, context)
        guard let changeSet = parsed else { return item }
        let header = changeSet.header
        guard header.author == context.session.device else {
            item.error = .wrongAuthor
            return item
        }
        if let error = author.refusal(header, nowMs: context.nowMs) {
            item.error = error
            return item
        }
        guard let head = context.log.hash(atIndex: header.deviceLogIndex), head == header.deviceLogHead,
            let signingKey = author.signingKey(activeAt: header)
        else {
            item.error = .invalidField("device_log_index/device_log_head do not name a log entry the author was active at")
            return item
        }
        if verify {
            do { try changeSet.verifySignature(signingKey) } catch {
                item.error = error
                return item
            }
        }
        item.changeSet = changeSet
        if let removal = author.newestRemoval, header.deviceLogIndex < removal { item.staleDeviceLog = true }
        return item
    }

    /// A restore push's item (PROTOCOL.md §19 "Restore pushes"): by any device of the account,
    /// admitted by the §10 rule over the server's device log, its signature always checked with
    /// the author's key from that log, and never refused as STALE_DEVICE_LOG (it is an old
    /// change set other devices already hold, not a new one sealed under a stale head).
    private static func prepareRestored(_ bytes: [UInt8], limit: Int, _ context: RequestContext) -> PreparedItem {
        var (item, parsed) = parse(bytes, limit: limit, context)
        guard let changeSet = parsed else { return item }
        // An assistant gives back only its own change sets (§29): the ones the server
        // acknowledged and lost, which an ordinary push may refuse as sealed under a stale head.
        guard !context.session.isAssistant || changeSet.header.author == context.session.device else {
            item.error = .wrongAuthor
            return item
        }
        let log = context.log
        switch log.admits(changeSetHeader: changeSet.header, hash: changeSet.hash) {
        case .accepted:
            break
        case .holdForDeviceLog(let index):
            item.error = .invalidField(
                "device_log_index \(index) is beyond the server's device log; append the missing entries first")
            return item
        case .rejected(let reason):
            item.error = .invalidField("the device log does not admit this change set: \(reason)")
            return item
        }
        // Admitted means the author is an active device or assistant of the log, so it has a key.
        guard let key = log.writerKey(changeSet.header.author) else {
            item.error = .invalidField("author is not a device of the account")
            return item
        }
        do { try changeSet.verifySignature(key) } catch {
            item.error = error
            return item
        }
        item.changeSet = changeSet
        return item
    }

    /// Size, shape and account: the checks every pushed item gets first. The change set is nil
    /// when one failed (the item then carries the error).
    private static func parse(_ bytes: [UInt8], limit: Int, _ context: RequestContext)
        -> (item: PreparedItem, changeSet: ChangeSet?)
    {
        guard bytes.count <= limit else {
            return (PreparedItem(error: .changeSetTooLarge(size: bytes.count, limit: limit)), nil)
        }
        let changeSet: ChangeSet
        do { changeSet = try ChangeSet(wire: bytes) } catch { return (PreparedItem(error: error), nil) }
        var item = PreparedItem(hash: changeSet.hash)
        guard changeSet.header.account == context.session.account else {
            item.error = .invalidField("account_id is not the authenticated account")
            return (item, nil)
        }
        return (item, changeSet)
    }
}

/// What every change set of a push is checked against that depends only on its author (the
/// authenticated device: any other author is refused first), looked up once per push rather
/// than once per change set.
struct PushAuthor: Sendable {
    /// The author as a device of the log (nil: not a member, or only as the recovery key).
    let member: DeviceLog.Member?
    /// The author as an assistant of the log (PROTOCOL.md §29).
    let assistant: AssistantMember?
    /// The index of the log's newest epoch start (a removal, an assistant's revocation or
    /// restriction, or a recovery replacement): change sets written under an older head are stale.
    let newestRemoval: UInt64?

    init(_ context: RequestContext) {
        member = context.log.members[context.session.device].flatMap { $0.isRecoveryKey ? nil : $0 }
        assistant = context.session.isAssistant ? context.log.assistants[context.session.device] : nil
        newestRemoval = context.log.newestEpochStartIndex
    }

    /// An assistant's change set outside what it may write now: after its expiry, or in a
    /// conversation its current scope does not hold (the server refuses its pushes there).
    func refusal(_ header: ChangeSetHeader, nowMs: UInt64) -> ProtocolError? {
        guard let assistant else { return nil }
        guard assistant.endedAt == nil, nowMs < assistant.current.expiresAtMs else { return .grantExpired }
        guard assistant.current.covers(header.conversation) else {
            return .outOfScope("conversation \(header.conversation) is not in the assistant's scope")
        }
        return nil
    }

    /// The author's key if it could write this change set at its named index: a device active
    /// there, or an assistant granted there with the conversation in its scope.
    func signingKey(activeAt header: ChangeSetHeader) -> Ed25519PublicKey? {
        if let member, member.isActive(atIndex: header.deviceLogIndex) { return member.signingKey }
        if let assistant, let terms = assistant.terms(atIndex: header.deviceLogIndex), terms.covers(header.conversation) {
            return assistant.signingKey
        }
        return nil
    }
}
