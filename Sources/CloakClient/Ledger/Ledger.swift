import CloakCRDT
import CloakCrypto
import CloakProtocol

/// Every author's chain in every conversation as this device accepted it, and the change sets
/// waiting to be admitted: the state behind PROTOCOL.md §9's chain, hold and fork checks. It
/// owns the `change_sets`, `chains`, `held` and `claimed_heads` tables and the cursor.
struct Ledger {
    /// The newest accepted change set per chain.
    var chains: [ChainKey: ChainPosition] = [:]
    /// Signed head claims other members made about chain positions this device does not hold
    /// yet (every distinct one, kept until checked: ADV-13). A claim recorded by a transaction
    /// that failed stays in memory: one check too many, never too few.
    private(set) var claims: [ChainKey: [HeadClaim]] = [:]
    /// Chains whose new position accepted change sets have not written yet (``saveChains(_:)``).
    private var unsavedChains: Set<ChainKey> = []
    /// Change sets waiting for a log entry, a key or a gap, by hash.
    private(set) var held = HeldSet()
    /// Held change sets whose signature this device already verified with their author's key
    /// (kept in memory only: after a restart they are verified again). A held change set is
    /// retried whenever its chain, the log or the keyring moves, and verifying it again each
    /// time was a tenth of a simulated run's time.
    /// The key is kept with it: admission trusts the verdict only for the key the log names now.
    private var heldVerified: [ChangeSetHash: Ed25519PublicKey] = [:]

    /// Reads chains, claims and held change sets back from the store.
    static func load(_ tx: any StoreTransaction) throws -> Ledger {
        var ledger = Ledger()
        ledger.chains = try tx.chains()
        for claim in try tx.claims() { ledger.claims[claim.chain, default: []].append(claim) }
        for (wire, reason) in try tx.heldChangeSets() {
            // A held copy that no longer parses is dropped: it comes back from the server.
            guard let changeSet = try? ChangeSet(wire: wire) else { continue }
            ledger.held[changeSet.hash] = (changeSet, HoldReason(stored: reason))
        }
        return ledger
    }

    /// The cursor up to which this device has processed deliveries.
    static func cursor(_ tx: any StoreTransaction) throws -> UInt64 {
        try tx.meta(.cursor).flatMap(UInt64.init(littleEndianBytes:)) ?? 0
    }

    /// Moves the cursor forward (never back), with the hash of the change set delivered at it:
    /// the anchor the next subscription names, so a server that reuses the cursor for other
    /// content (a restored backup) is caught (ADV-44).
    static func advanceCursor(to cursor: UInt64, anchor: ChangeSetHash?, _ tx: any StoreTransaction) throws {
        guard cursor > (try Self.cursor(tx)) else { return }
        try tx.setMeta(.cursor, cursor.littleEndianBytes)
        if let anchor { try tx.setMeta(.cursorAnchor, anchor.bytes) } else { try tx.deleteMeta(.cursorAnchor) }
    }

    /// The hash of the change set at the cursor, if it was one this device could read.
    static func anchor(_ tx: any StoreTransaction) throws -> ChangeSetHash? {
        try tx.meta(.cursorAnchor).flatMap { try? ChangeSetHash(validating: $0, field: "anchor") }
    }

    /// Starts over from cursor 0 (the server was found to have lost or reused cursors).
    static func resetCursor(_ tx: any StoreTransaction) throws {
        try tx.deleteMeta(.cursor)
        try tx.deleteMeta(.cursorAnchor)
    }

    /// Whether this device has any chain (a new device has none and bootstraps from snapshots).
    var isEmpty: Bool { chains.isEmpty }

    /// PROTOCOL.md §9–§10 before decryption.
    func verdict(
        for changeSet: ChangeSet, log: DeviceLog, signatureVerified: Bool, hasKey: (ConversationID, UInt64) -> Bool,
        _ tx: any StoreTransaction
    ) -> Verdict {
        let header = changeSet.header
        return Admission.verdict(
            for: changeSet, account: log.account, log: log, signatureVerified: signatureVerified,
            hasKey: hasKey, chain: chains[ChainKey(conversation: header.conversation, author: header.author)],
            storedHash: { try? tx.storedHash(conversation: header.conversation, author: header.author, seq: $0) })
    }

    /// Marks a chain forked: nothing more of it is accepted.
    mutating func markForked(_ key: ChainKey, _ tx: any StoreTransaction) throws {
        guard var position = chains[key], !position.forked else { return }
        position.forked = true
        chains[key] = position
        try tx.setChain(key, position)
    }

    /// Stores an accepted change set and moves its chain; the position is written once per
    /// batch by ``saveChains(_:)``, in the same transaction.
    mutating func record(_ changeSet: ChangeSet, local: Bool, _ tx: any StoreTransaction) throws {
        _ = try tx.insertChangeSet(changeSet, local: local)
        try pass(changeSet, tx)
    }

    /// Moves a chain past a change set (and out of the held set), without storing it: what
    /// ``record(_:local:_:)`` does after storing, and all that happens to one refused after
    /// admission — nothing replays it, and a copy delivered again is a duplicate (a different
    /// one at that seq a fork).
    mutating func pass(_ changeSet: ChangeSet, _ tx: any StoreTransaction) throws {
        let key = ChainKey(conversation: changeSet.header.conversation, author: changeSet.header.author)
        chains[key] = ChainPosition(seq: changeSet.header.seq, hash: changeSet.hash)
        unsavedChains.insert(key)
        if held.removeValue(forKey: changeSet.hash) != nil {
            heldVerified[changeSet.hash] = nil
            try tx.deleteHeld(hash: changeSet.hash)
        }
    }

    /// Writes the chain positions accepted change sets moved since the last call.
    mutating func saveChains(_ tx: any StoreTransaction) throws {
        for key in unsavedChains {
            if let position = chains[key] { try tx.setChain(key, position) }
        }
        unsavedChains = []
    }

    /// Writes a position that memory takes on only after the transaction commits (own seals).
    static func storeChain(_ key: ChainKey, _ position: ChainPosition, _ tx: any StoreTransaction) throws {
        try tx.setChain(key, position)
    }

    /// Forgets positions no transaction wrote (after a failed one: they were never stored with
    /// their change sets).
    mutating func discardUnsaved() { unsavedChains = [] }

    /// Sets a position and writes it now (own seals, snapshots, removals).
    mutating func setChain(_ key: ChainKey, _ position: ChainPosition?, _ tx: any StoreTransaction) throws {
        chains[key] = position
        if let position { try tx.setChain(key, position) } else { try tx.deleteChain(key) }
    }

    // MARK: Holding

    /// Holds a change set (bounded by count and bytes, ADV-29: an evicted one comes back
    /// through a later catch-up or fetch). `verifiedWith` is the key this device checked its
    /// signature with, if it did. Returns whether it was not held before.
    @discardableResult
    mutating func hold(
        _ changeSet: ChangeSet, reason: HoldReason, verifiedWith key: Ed25519PublicKey?, now: UInt64,
        limits: (count: Int, bytes: Int), _ tx: any StoreTransaction
    ) throws -> Bool {
        let isNew = held[changeSet.hash] == nil
        held[changeSet.hash] = (changeSet, reason)
        // A copy with the same hash may carry another signature: only this one's check counts.
        heldVerified[changeSet.hash] = key
        while held.count > limits.count || held.bytes > limits.bytes,
            let evicted = held.keys.first(where: { $0 != changeSet.hash })
        {
            heldVerified[evicted] = nil
            held[evicted] = nil
            try tx.deleteHeld(hash: evicted)
        }
        try tx.putHeld(hash: changeSet.hash, wire: changeSet.wire, reason: reason.stored, at: now)
        return isNew
    }

    /// Takes the held change sets of one chain (or all), oldest seq first, out of the held set
    /// for another admission attempt, each with the key its signature verified with when held.
    mutating func takeHeld(of key: ChainKey?, _ tx: any StoreTransaction) throws
        -> [(changeSet: ChangeSet, verifiedWith: Ed25519PublicKey?)]
    {
        let candidates = held.values.filter { entry in
            guard let key else { return true }
            return entry.changeSet.header.conversation == key.conversation && entry.changeSet.header.author == key.author
        }.map(\.changeSet).sorted { ($0.header.seq, $0.hash) < ($1.header.seq, $1.hash) }
        return try candidates.map { changeSet in
            held[changeSet.hash] = nil
            try tx.deleteHeld(hash: changeSet.hash)
            return (changeSet, heldVerified.removeValue(forKey: changeSet.hash))
        }
    }

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

    // MARK: Heads

    /// ADV-13: compares the heads the author claims to have seen with what we hold, and the
    /// claims others made about this change set's chain position. Returns the disagreements.
    /// Claims about positions this device does not hold yet are kept until it does; two claims
    /// for one position with different hashes are a forked view at once.
    mutating func checkHeads(_ changeSet: ChangeSet, claims heads: [ChainHead], _ tx: any StoreTransaction) throws
        -> [SecurityEvent]
    {
        let header = changeSet.header
        let own = ChainKey(conversation: header.conversation, author: header.author)
        var events: [SecurityEvent] = []
        if let pending = claims[own] {
            for claim in pending where claim.seq == header.seq && claim.hash != changeSet.hash {
                events.append(SecurityEvent(
                    .forkedView, conversation: header.conversation, device: header.author, seq: header.seq,
                    detail: "another device saw a different change set at this position"))
            }
            // Checked (or overtaken): claims at or below this position go.
            claims[own] = pending.filter { $0.seq > header.seq }
            try tx.deleteClaims(own, throughSeq: header.seq)
        }
        for head in heads where head.device != header.author {
            let key = ChainKey(conversation: header.conversation, author: head.device)
            let ours: ChangeSetHash? =
                if let position = chains[key], position.seq == head.seq { position.hash } else {
                    try tx.storedHash(conversation: header.conversation, author: head.device, seq: head.seq)
                }
            if let ours {
                if ours != head.hash {
                    events.append(SecurityEvent(
                        .forkedView, conversation: header.conversation, device: head.device, seq: head.seq,
                        detail: "the author saw a different history"))
                }
                continue
            }
            let claim = HeadClaim(chain: key, seq: head.seq, hash: head.hash, claimedBy: header.author)
            let known = claims[key, default: []]
            if known.contains(where: { $0.seq == head.seq && $0.hash != head.hash }) {
                events.append(SecurityEvent(
                    .forkedView, conversation: header.conversation, device: head.device, seq: head.seq,
                    detail: "two members saw different change sets at one position"))
            }
            guard !known.contains(claim), known.count < Self.claimsPerChainMax else { continue }
            claims[key, default: []].append(claim)
            try tx.putClaim(claim)
        }
        return events
    }

    /// Claims kept per chain (a hostile member could otherwise grow the store without bound).
    static let claimsPerChainMax = 64

    /// The highest position some member claims for each chain this device is behind on: data
    /// known to exist (the withholding check waits for it).
    func claimedBeyond() -> [ChainKey: UInt64] {
        var beyond: [ChainKey: UInt64] = [:]
        for (key, list) in claims {
            let mine = chains[key]?.seq ?? 0
            if let highest = list.map(\.seq).max(), highest > mine { beyond[key] = highest }
        }
        return beyond
    }
}

/// A request to re-fetch part of an author's chain (a gap).
struct GapRequest: Hashable, Sendable {
    let conversation: ConversationID
    let author: DeviceID
    let fromSeq: UInt64
    let toSeq: UInt64
}

extension HoldReason {
    /// The reason as stored in the `held` table.
    var stored: String {
        switch self {
        case .deviceLog(let index): "log:\(index)"
        case .epochKey(let epoch): "key:\(epoch)"
        case .gap(let seq): "gap:\(seq)"
        }
    }

    init(stored: String) {
        let parts = stored.split(separator: ":")
        let value = parts.count == 2 ? UInt64(parts[1]) ?? 0 : 0
        switch parts.first {
        case "log": self = .deviceLog(index: value)
        case "key": self = .epochKey(value)
        default: self = .gap(expectedSeq: value)
        }
    }
}
