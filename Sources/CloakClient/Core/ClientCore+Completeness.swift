import CloakCrypto
import CloakProtocol

/// One chain head as the server reports it (`FetchHeads`).
struct ServerHead: Sendable, Equatable {
    let chain: ChainKey
    let seq: UInt64
    let hash: ChangeSetHash
}

/// What comparing the server's heads with this device's chains found.
struct HeadsComparison {
    /// Chains the server holds more of: fetch them.
    var behind: [GapRequest] = []
    /// Change sets this device holds and the server lost (restore them), in chain order.
    var ahead: [ChangeSet] = []
    /// Own change sets the server acknowledged once and no longer has (a rollback).
    var lostOwn = 0
}

/// What this device held when it asked for the server's heads. Only that can be missing from
/// the answer: the server reads its heads after the request arrives, so everything it had
/// acknowledged or delivered before then is in them, while an acknowledgement or delivery
/// that reaches the device during the scan may belong to a commit the read did not see yet
/// (counting it would call an ordinary race a rollback).
struct HeadsBasis {
    /// Each chain's newest seq this device held.
    let positions: [ChainKey: UInt64]
    /// Own change sets not acknowledged yet.
    let unacknowledged: Set<ChangeSetHash>
}

extension ClientCore {
    // MARK: Incidents

    /// Opens an incident unless it is open already; returns its event the first time.
    func open(_ incident: Incident, _ output: inout CoreOutput) throws(ClientError) {
        guard incidents[incident.id] == nil else { return }
        incidents[incident.id] = incident
        try store.write { tx in
            try tx.putIncident(incident)
            try raise(incident.event, tx, &output)
        }
    }

    /// Closes an incident that is open, with an ``SecurityEvent/Kind/incidentResolved`` event.
    func resolve(_ id: String, _ output: inout CoreOutput) throws(ClientError) {
        guard let incident = incidents.removeValue(forKey: id) else { return }
        try store.write { tx in
            try tx.deleteIncident(id: id)
            try raise(
                SecurityEvent(.incidentResolved, conversation: incident.conversation, device: incident.device,
                              detail: "resolved: \(incident.detail)"), tx, &output)
        }
    }

    /// Whether a device-log incident (rolled back or withheld) is open: the log is looked at
    /// again until it closes.
    var hasOpenLogIncident: Bool {
        [Incident.Kind.deviceLogRollback, .deviceLogWithheld].contains { incidents[Incident(kind: $0, detail: "", openedAt: 0).id] != nil }
    }

    static func withheldID(_ key: ChainKey) -> String {
        Incident(kind: .withheld, conversation: key.conversation, device: key.author, detail: "", openedAt: 0).id
    }

    // MARK: Withholding (ADV-45)

    /// Reviews what is known to exist and still missing: asks for what was not asked for on
    /// this connection, opens a `withheld` incident for what stayed missing too long, resolves
    /// those that arrived. Called while live.
    func reviewExpectations() throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        // Positions expected before a removal arrived may lie past its cut-off: nothing this
        // device may ever accept, so nothing to wait for (§10).
        for key in expectations.wanted.keys {
            if let limit = acceptedLimit(key) { expectations.limit(key, to: limit) }
            // Nor does an assistant wait for a conversation its scope lost (§29).
            if !inCurrentScope(key.conversation) { expectations.limit(key, to: 0) }
        }
        for (key, seq) in ledger.claimedBeyond() { expect(key, upTo: seq) }
        // A withheld incident outlives what opened it (it is stored; the expectation was not,
        // or a cut-off lowered it): what it names is expected again, so it is asked for and the
        // incident closes when it arrives — or at once, when nothing of it may still come.
        var unexpected: [String] = []
        for (id, incident) in incidents where incident.kind == .withheld {
            guard let conversation = incident.conversation, let author = incident.device, let upTo = incident.toSeq else { continue }
            let key = ChainKey(conversation: conversation, author: author)
            expect(key, upTo: upTo)
            if expectations.wanted[key] == nil { unexpected.append(id) }
        }
        for id in unexpected.sorted() { try resolve(id, &output) }
        for gap in ledger.openGaps() { expect(ChainKey(conversation: gap.conversation, author: gap.author), upTo: gap.toSeq) }
        // A change set held for an epoch key is known to exist but unreadable: the key
        // envelope is what is missing, and the same clock applies to it.
        var waitingForKey: [ChainKey: UInt64] = [:]
        for (changeSet, reason) in ledger.held.values {
            guard case .epochKey(let epoch) = reason else { continue }
            let key = ChainKey(conversation: changeSet.header.conversation, author: changeSet.header.author)
            expect(key, upTo: changeSet.header.seq)
            waitingForKey[key] = epoch
        }
        let review = expectations.review(chains: ledger.chains, now: now(), after: configuration.withheldAfterMillis)
        // Re-fetching a change set already held would only bring it again: ask for keys instead.
        output.gaps = review.fetch.filter { waitingForKey[ChainKey(conversation: $0.conversation, author: $0.author)] == nil }
        if output.gaps.count < review.fetch.count { output.fetchKeyEnvelopes = true }
        for gap in review.overdue {
            let key = ChainKey(conversation: gap.conversation, author: gap.author)
            let what =
                if let epoch = waitingForKey[key] {
                    "arrived but cannot be read: the key of epoch \(epoch) was not delivered"
                } else {
                    "are known to exist and were not delivered"
                }
            try open(Incident(
                kind: .withheld, conversation: gap.conversation, device: gap.author, fromSeq: gap.fromSeq, toSeq: gap.toSeq,
                detail: "change sets \(gap.fromSeq)…\(gap.toSeq) of a member's chain \(what) (\(Self.withheldID(key)))",
                openedAt: now()), &output)
        }
        for key in review.filled { try resolve(Self.withheldID(key), &output) }
        try reviewCurrentEpochKey(&output)
        return output
    }

    /// The incident of a withheld current epoch key (one at a time: only the newest epoch's
    /// key is needed to seal).
    static let currentKeyWithheldID = Incident(kind: .withheld, detail: "", openedAt: 0).id

    /// §30: a member without the key of the account's current epoch cannot seal its edits, and
    /// when nothing it holds was sealed under that epoch no held change set reports the key
    /// missing — the edits would wait in silence (seed 10148: the server kept epoch 3 and 4
    /// envelopes from two devices, and the only member that could have written under them was
    /// one of the two). It asks for the envelopes when it notices, reports the key withheld once
    /// it stays missing for `withheldAfterMillis`, and the incident closes when the key comes.
    func reviewCurrentEpochKey(_ output: inout CoreOutput) throws(ClientError) {
        let id = Self.currentKeyWithheldID
        guard let log = membership.log, !membership.removed, !membership.keyring.has(epoch: log.currentEpoch) else {
            currentKeyMissingSince = nil
            if incidents[id] != nil { try resolve(id, &output) }
            return
        }
        // An assistant holds the keys of its scope only; a stale log may name an epoch whose
        // envelopes come with the entries this device still lacks.
        guard !membership.isAssistant(me), !membership.isKnownStale, configuration.withheldAfterMillis > 0 else { return }
        let now = now()
        guard let since = currentKeyMissingSince else {
            currentKeyMissingSince = now
            output.fetchKeyEnvelopes = true
            return
        }
        guard incidents[id] == nil, now >= since + configuration.withheldAfterMillis else { return }
        output.fetchKeyEnvelopes = true
        try open(Incident(
            kind: .withheld,
            detail: "the key of epoch \(log.currentEpoch) was not delivered: this device cannot seal its edits until it "
                + "arrives (it asks for it again)", openedAt: now), &output)
    }

    /// Notes that `key` reaches `seq` — as far as this device may ever accept: a removed
    /// device's chain ends at its removal's cut-off (§10), whatever the server stores beyond.
    func expect(_ key: ChainKey, upTo seq: UInt64) {
        guard inCurrentScope(key.conversation) else { return }
        let limit = min(seq, acceptedLimit(key) ?? seq)
        if limit > (ledger.chains[key]?.seq ?? 0) { expectations.expect(key, upTo: limit) }
    }

    /// Whether this client can read and write `conversation` under its current terms: a device
    /// always; an assistant only in its current scope (§29). An assistant never receives another
    /// conversation's key, and an honest server sends it nothing of one; a change set from
    /// there (a hostile server's replay, or one of a conversation a restriction took away) is
    /// kept held — a later grant of the conversation brings its keys and admits it — but is
    /// nothing it waits for: counting it as withheld would be an alarm that never closes.
    func inCurrentScope(_ conversation: ConversationID) -> Bool {
        guard let log = membership.log, let assistant = log.assistants[me] else { return true }
        return assistant.endedAt == nil && assistant.terms(atIndex: log.headIndex)?.covers(conversation) == true
    }

    /// How far `key`'s chain may ever be accepted, when an entry ended its author's right to
    /// write there: a removed device's cut-off (§10), or — for an assistant not granted that
    /// conversation now — the cut-off of the newest revocation or restriction that took it
    /// away (§29). Nil: no limit.
    func acceptedLimit(_ key: ChainKey) -> UInt64? {
        guard let log = membership.log else { return nil }
        if let removal = log.removal(of: key.author) {
            return removal.cutoffs.first { $0.conversation == key.conversation }?.seq ?? 0
        }
        guard let assistant = log.assistants[key.author] else { return nil }
        if assistant.endedAt == nil, assistant.terms(atIndex: log.headIndex)?.covers(key.conversation) == true { return nil }
        let ending = assistant.removals.last { at in
            let entry = log.entries[Int(at)]
            return entry.kind == .revokeAssistant || entry.scope.contains(key.conversation)
        }
        guard let ending else { return nil }
        return log.entries[Int(ending)].cutoffs.first { $0.conversation == key.conversation }?.seq ?? 0
    }

    /// A gap re-fetch went out (a later change set showed the hole): the position is expected
    /// from now on, and — when caught up, where the clock runs — asked for now. Without this
    /// only the next review noted it, and nothing woke the driver for one before the next ping.
    func asked(_ gap: GapRequest, at now: UInt64?) {
        let key = ChainKey(conversation: gap.conversation, author: gap.author)
        expect(key, upTo: gap.toSeq)
        if let now { expectations.asked(key, at: now) }
    }

    // MARK: Heads (anti-entropy, rollback)

    /// Compares the server's heads with this device's chains. A position where the server names
    /// another hash than the change set this device holds is a forked view (reported in
    /// `output`); positions it lacks are restored, positions it has beyond ours are fetched.
    func compareHeads(_ heads: [ServerHead], basis: HeadsBasis, _ output: inout CoreOutput) throws(ClientError)
        -> HeadsComparison
    {
        var result = HeadsComparison()
        var serverSeq: [ChainKey: UInt64] = [:]
        var forks: [SecurityEvent] = []
        try store.read { tx in
            for head in heads {
                serverSeq[head.chain] = head.seq
                let mine = ledger.chains[head.chain]?.seq ?? 0
                if head.seq > mine {
                    expect(head.chain, upTo: head.seq)
                    guard expectations.wanted[head.chain] != nil else { continue }
                    result.behind.append(GapRequest(
                        conversation: head.chain.conversation, author: head.chain.author, fromSeq: mine + 1, toSeq: head.seq))
                } else if let stored = try tx.storedHash(
                    conversation: head.chain.conversation, author: head.chain.author, seq: head.seq), stored != head.hash
                {
                    forks.append(SecurityEvent(
                        .forkedView, conversation: head.chain.conversation, device: head.chain.author, seq: head.seq,
                        detail: "the server names a different change set at a position this device holds"))
                }
            }
        }
        for (chain, held) in basis.positions.sorted(by: { ($0.key.conversation, $0.key.author) < ($1.key.conversation, $1.key.author) }) {
            let theirs = serverSeq[chain] ?? 0
            guard held > theirs else { continue }
            let lost = try restoreCandidates(chain, after: theirs, unacknowledged: basis.unacknowledged)
                .filter { $0.header.seq <= held }
            result.ahead += lost
            // Own change sets beyond the server's head that it had acknowledged.
            if chain.author == me { result.lostOwn += lost.count }
        }
        if !forks.isEmpty { try store.write { tx in for event in forks { try raise(event, tx, &output) } } }
        return result
    }

    /// What this device holds now, for a heads scan about to be asked for.
    func headsBasis() throws(ClientError) -> HeadsBasis {
        HeadsBasis(
            positions: ledger.chains.mapValues(\.seq),
            unacknowledged: Set(try outboxChangeSets(limit: Int.max >> 1).map(\.hash)))
    }

    /// Stored change sets of `chain` after `seq` that the server had acknowledged (own) or
    /// delivered (others'), in chain order: what a restore push sends. Own change sets still in
    /// the outbox never go in a restore push: they take the ordinary push path, where the
    /// server applies the stale-log rule of §19 (a restore push is exempt, and a change set
    /// written under a head older than a removal must not slip through it).
    func restoreCandidates(_ chain: ChainKey, after seq: UInt64, unacknowledged: Set<ChangeSetHash>? = nil)
        throws(ClientError) -> [ChangeSet]
    {
        let unacknowledged: Set<ChangeSetHash> =
            if let unacknowledged { unacknowledged } else { Set(try outboxChangeSets(limit: Int.max >> 1).map(\.hash)) }
        var candidates: [ChangeSet] = []
        for changeSet in try store.read({ tx in try tx.changeSets(in: chain.conversation, after: 0) })
            .compactMap({ try? ChangeSet(wire: $0.wire) })
            .filter({ $0.header.author == chain.author && $0.header.seq > seq }).sorted(by: { $0.header.seq < $1.header.seq })
        {
            // A chain's restore stops at the first own unacknowledged change set: the rest
            // follows it through ordinary pushes.
            if unacknowledged.contains(changeSet.hash) { break }
            candidates.append(changeSet)
        }
        return candidates
    }

    /// Device-log entries the server lacks (it served a shorter log). None for an assistant: it
    /// may not write to the device log, restore appends included (§29); the account's devices
    /// give the entries back (it re-appended, was refused NOT_PERMITTED, and tried again).
    func logEntries(from index: Int) -> [DeviceLogEntry] {
        guard !isAssistant, let log = membership.log, index < log.entries.count else { return [] }
        return Array(log.entries[index...])
    }

    /// Every epoch key this device holds, sealed again to every active device and the recovery
    /// key: a restored server may have lost envelopes (first write wins, so re-sending is safe).
    /// The current epoch, when the server's full list of this device's key envelopes lacks
    /// the one for it although the server must hold it: this device was active when the epoch
    /// started, and whoever started it (this device included) sealed it to every active device,
    /// itself too. A server restored from a backup older than that envelope forgets it silently
    /// — and with it everyone else's — where nothing else shows the loss (ADV-44): a device
    /// that joined later re-appends the lost log entry but cannot re-seal a key it never got.
    /// Nil while this device's own envelopes are still on their way.
    func lostOwnEnvelope(in served: [KeyEnvelope]) throws(ClientError) -> UInt64? {
        guard let log = membership.log, !membership.removed, !membership.isAssistant(me) else { return nil }
        let epoch = log.currentEpoch
        guard membership.keyring.has(epoch: epoch), log.isActive(me, atIndex: log.newestEpochStartIndex ?? 0),
            try queuedEnvelopes(limit: 1).isEmpty, !served.contains(where: { $0.epoch == epoch && $0.recipient == me })
        else { return nil }
        return epoch
    }

    /// What a device re-seals to heal a rolled-back server (§30), by recipient: every epoch key
    /// it holds, to every active device and the recovery key; and to each active assistant the
    /// conversation keys of its current scope for those epochs (§29) — what its grants, which
    /// seal a conversation's whole history, and the epochs since sealed to it. A server restored
    /// from a backup older than a grant's envelopes otherwise leaves the assistant without the
    /// history of its scope for good: the grant entry comes back through restore appends, its
    /// envelopes through nothing.
    func resealedEnvelopes() throws(ClientError) -> [(recipient: DeviceID, envelope: Cloak_V1_KeyEnvelope)] {
        let log = try requireAccount()
        var recipients = log.activeDevices.compactMap { id in log.members[id].map { (id, $0.agreementKey) } }
        if let recovery = log.recoveryKey { recipients.append((recovery.id, recovery.member.agreementKey)) }
        var envelopes: [(recipient: DeviceID, envelope: Cloak_V1_KeyEnvelope)] = []
        for (epoch, key) in membership.keyring.epochKeys.sorted(by: { $0.key < $1.key }) {
            // Every active member gets every epoch (a linked device receives the history too).
            for (id, agreement) in recipients {
                envelopes.append((id, try seal(key, epoch: epoch, account: log.account, to: id, agreement).message))
            }
        }
        // An assistant's client holds no epoch key and seals nothing to other assistants.
        guard !isAssistant else { return envelopes }
        for id in log.activeAssistants { envelopes += try scopeKeyEnvelopes(to: id, log).map { (id, $0) } }
        return envelopes
    }
}
