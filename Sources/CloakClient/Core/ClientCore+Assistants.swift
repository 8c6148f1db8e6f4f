import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) public import CloakProtocol

// AI assistants as scoped, revocable members (PROTOCOL.md §29): what a device does to grant,
// narrow and revoke one, and what an assistant's own client does with the keys it receives.
extension ClientCore {
    /// Whether this client runs as an assistant of its account rather than as a device.
    var isAssistant: Bool { membership.isAssistant(me) }

    /// Refuses device-only work (granting, linking, snapshots…) on an assistant's client.
    func requireDevice() throws(ClientError) -> DeviceLog {
        let log = try requireAccount()
        guard !isAssistant else { throw .notPermitted("an assistant cannot change the account's members") }
        return log
    }

    // MARK: Granting (a device)

    /// A `grant_assistant` entry for `invitation`'s keys: a new assistant, or an active one whose
    /// scope grows by `conversations` and whose expiry becomes `expiresAtMs`.
    func prepareGrant(_ invitation: AssistantInvitation, conversations: [ConversationID], expiresAtMs: UInt64)
        throws(ClientError) -> DeviceLogEntry
    {
        let log = try requireDevice()
        guard !conversations.isEmpty, conversations.count <= DeviceLogEntry.maxScope else {
            throw .invalidEdit("grant 1 to \(DeviceLogEntry.maxScope) conversations")
        }
        for conversation in conversations where conversation == .library || !documents.knows(conversation) {
            throw .unknownConversation(conversation)
        }
        guard expiresAtMs > now() else { throw .invalidEdit("the expiry must be in the future") }
        // The grant seals its conversations' history from this device's keyring, and no one
        // seals an epoch that began before the grant to the assistant later: a key this device
        // lacks (withheld from it, ADV-45) would be one the assistant never gets.
        try requireEveryEpochKey(log)
        let id = invitation.id
        guard log.members[id] == nil else { throw .notPermitted("that key is a device of the account, not an assistant") }
        var scope = Set(conversations)
        if let existing = log.assistants[id] {
            guard existing.endedAt == nil else { throw .notPermitted("that assistant was revoked; it needs new keys") }
            scope.formUnion(existing.current.scope)
        }
        guard scope.count <= DeviceLogEntry.maxScope else { throw .invalidEdit("the scope would exceed its limit") }
        return DeviceLogEntry.grantAssistant(
            signingKey: invitation.signingKey, agreementKey: invitation.agreementKey, scope: Array(scope),
            expiresAtMs: expiresAtMs, after: log, signer: identity.signing, createdAtMs: now())
    }

    /// Notes durably (`unsealed` true, before the grant entry is sent) or forgets (once its
    /// envelopes were stored) that a grant of `assistant` by this device may have left the
    /// assistant without its conversation keys: a connection lost or a crash between the entry
    /// and its envelopes would otherwise leave the history unreadable for good, since no one
    /// seals an epoch before a grant to the assistant later (PROTOCOL.md §29).
    func markGrantUnsealed(_ assistant: DeviceID, _ unsealed: Bool) throws(ClientError) {
        try store.write { tx in
            var ids = try Self.unsealedGrants(tx).filter { $0 != assistant }
            if unsealed { ids.append(assistant) }
            guard !ids.isEmpty else { return try tx.deleteMeta(.unsealedGrants) }
            try tx.setMeta(.unsealedGrants, ids.flatMap(\.bytes))
        }
    }

    /// The assistants ``markGrantUnsealed(_:_:)`` noted, with the envelopes to store for each
    /// still active: its current scope's keys of every epoch this device holds (the server keeps
    /// the first copy of each, so those already stored cost nothing but bytes).
    func unsealedGrantEnvelopes() throws(ClientError) -> [(assistant: DeviceID, envelopes: [Cloak_V1_KeyEnvelope])] {
        guard let log = membership.log, !isAssistant, !membership.removed else { return [] }
        let ids = try store.read { tx in try Self.unsealedGrants(tx) }
        return try ids.map { id throws(ClientError) in (id, try scopeKeyEnvelopes(to: id, log)) }
    }

    /// An active assistant's current scope's keys of every epoch this device holds, sealed to
    /// it (nothing for one revoked or unknown): what a grant seals, sealed again when its
    /// envelopes may have been lost.
    func scopeKeyEnvelopes(to id: DeviceID, _ log: DeviceLog) throws(ClientError) -> [Cloak_V1_KeyEnvelope] {
        guard let assistant = log.assistants[id], assistant.endedAt == nil else { return [] }
        return try conversationKeyEnvelopes(to: id, assistant.agreementKey, conversations: assistant.current.scope).map(\.message)
    }

    /// A new epoch's conversation keys sealed to each active assistant (its current scope), and
    /// to one the epoch's removed device granted or widened, its scope's keys of every earlier
    /// epoch this device holds too (``orphanedGrants(_:removing:)``).
    func assistantEnvelopes(of key: SymmetricKey, epoch: UInt64, _ log: DeviceLog) throws(ClientError)
        -> [Cloak_V1_KeyEnvelope]
    {
        let removed = log.entries.last { $0.epoch == epoch && $0.kind.startsEpoch }?.removedDevice
        let orphaned = removed.map { Self.orphanedGrants(log, removing: $0) } ?? []
        var envelopes: [Cloak_V1_KeyEnvelope] = []
        for id in log.activeAssistants {
            guard let assistant = log.assistants[id] else { continue }
            if orphaned.contains(id) { envelopes += try scopeKeyEnvelopes(to: id, log) }
            for conversation in assistant.current.scope {
                let conversationKey = ConversationKeys.conversationKey(epochKey: key, conversation: conversation, epoch: epoch)
                envelopes.append(try sealConversationKey(
                    conversationKey, conversation: conversation, epoch: epoch, to: id, assistant.agreementKey).message)
            }
        }
        return envelopes
    }

    /// The active assistants `removed` granted or widened. Its grant's envelopes may never have
    /// reached the server (its connection cut between the entry and them, simulator large seed
    /// 6), and what would seal them later — its durable mark (``markGrantUnsealed(_:_:)``) —
    /// ends with its removal: no one else seals an epoch before a grant to the assistant. The
    /// remover seals them again with the new epoch's envelopes, in the same transaction (the
    /// server keeps the first copy of each, so those already stored cost only bytes).
    static func orphanedGrants(_ log: DeviceLog, removing removed: DeviceID) -> Set<DeviceID> {
        Set(log.activeAssistants.filter { id in
            log.assistants[id]?.terms.contains { terms in
                guard terms.from < log.entries.count else { return false }
                let entry = log.entries[Int(terms.from)]
                return entry.kind == .grantAssistant && entry.signer == removed
            } ?? false
        })
    }

    private static func unsealedGrants(_ tx: any StoreTransaction) throws -> [DeviceID] {
        let bytes = try tx.meta(.unsealedGrants) ?? []
        // Written by this device; a malformed tail is dropped (a re-seal too few, never a crash).
        return stride(from: 0, to: bytes.count - bytes.count % 16, by: 16).compactMap {
            try? DeviceID(validating: bytes[$0..<$0 + 16], field: "assistant")
        }
    }

    /// The keys of `conversations` for every epoch this device holds, sealed to the assistant
    /// (its conversations' history, and nothing else: PROTOCOL.md §29 "Envelopes").
    func conversationKeyEnvelopes(to assistant: DeviceID, _ agreementKey: X25519PublicKey, conversations: [ConversationID])
        throws(ClientError) -> [ConversationKeyEnvelope]
    {
        _ = try requireDevice()
        var envelopes: [ConversationKeyEnvelope] = []
        for epoch in membership.keyring.epochKeys.keys.sorted() {
            for conversation in conversations.sorted() {
                guard let key = membership.conversationKey(conversation, epoch: epoch) else { continue }
                envelopes.append(try sealConversationKey(key, conversation: conversation, epoch: epoch, to: assistant, agreementKey))
            }
        }
        return envelopes
    }

    func sealConversationKey(
        _ key: SymmetricKey, conversation: ConversationID, epoch: UInt64, to recipient: DeviceID, _ recipientKey: X25519PublicKey
    ) throws(ClientError) -> ConversationKeyEnvelope {
        guard let account else { throw .noAccount }
        do {
            return try ConversationKeyEnvelope.seal(
                key, conversation: conversation, epoch: epoch, account: account, recipient: recipient,
                recipientKey: recipientKey, sender: me, signer: identity.signing, random: random)
        } catch { throw .crypto(error) }
    }

    /// A `revoke_assistant` entry (`removing` nil) or a `restrict_assistant` entry removing
    /// `removing` from the assistant's scope, with the assistant's cut-offs there (its newest
    /// change set this device accepted, per removed conversation; §10) and the next epoch's key,
    /// remembered durably before the entry is sent.
    func prepareEndAssistant(_ id: DeviceID, removing: [ConversationID]?, reason: AssistantEndReason)
        throws(ClientError) -> (entry: DeviceLogEntry, key: SymmetricKey)
    {
        let log = try requireDevice()
        guard let assistant = log.assistants[id], assistant.endedAt == nil else { throw .unknownAssistant(id) }
        let removed = Set(removing ?? assistant.current.scope)
        guard removed.isSubset(of: assistant.current.scope), !removed.isEmpty else {
            throw .invalidEdit("only conversations in the assistant's scope can be removed from it")
        }
        let cutoffs = self.cutoffs(of: id).filter { removed.contains($0.conversation) }
        let entry: DeviceLogEntry
        if let removing, Set(removing) != Set(assistant.current.scope) {
            entry = DeviceLogEntry.restrictAssistant(
                id, removing: removing, cutoffs: cutoffs, after: log, signer: identity.signing, createdAtMs: now())
        } else {
            entry = DeviceLogEntry.revokeAssistant(
                id, reason: reason, cutoffs: cutoffs, after: log, signer: identity.signing, createdAtMs: now())
        }
        let key = SymmetricKey.random(using: random)
        let cipher = cipher
        try store.write { tx in try Membership.rememberPendingKey(key, epoch: entry.epoch, tx, cipher: cipher) }
        return (entry, key)
    }

    /// Active assistants whose expiry has passed by this device's clock: a device ends each with
    /// a `revoke_assistant` entry (reason `expired`), which rotates the keys of its conversations.
    func expiredAssistants() -> [DeviceID] {
        guard let log = membership.log, !membership.removed, !isAssistant else { return [] }
        let now = now()
        return log.activeAssistants.filter { (log.assistants[$0]?.current.expiresAtMs ?? .max) <= now }
    }

    // MARK: Reading

    /// Every assistant the account ever granted, newest grant first.
    func assistantInfos() -> [AssistantInfo] {
        guard let log = membership.log else { return [] }
        return log.assistants.map { id, assistant in AssistantInfo(id: id, assistant, log: log, now: now()) }
            .sorted { ($0.grantedAtMillis, $0.id) > ($1.grantedAtMillis, $1.id) }
    }

    /// The assistants that can read `conversation` now (granted, in scope, not expired).
    func assistantsReading(_ conversation: ConversationID) -> [AssistantInfo] {
        assistantInfos().filter { $0.canRead && $0.scope.contains(conversation) }.sorted { $0.id < $1.id }
    }

    // MARK: The assistant's own client

    /// Conversation keys sealed to this assistant (§29): each from a device of the log that had
    /// not been removed when its epoch began, for a conversation of this assistant's scope,
    /// bound to this account, epoch, conversation and assistant. Epoch keys are refused.
    func receiveConversationKeys(_ envelopes: [ConversationKeyEnvelope], refusing epochKeys: [KeyEnvelope] = [])
        throws(ClientError) -> CoreOutput
    {
        var output = CoreOutput()
        guard let log = membership.log, !membership.removed, let assistant = log.assistants[me] else { return output }
        var events = epochKeys.map { envelope in
            SecurityEvent(.keyEnvelopeRejected, device: envelope.sender, detail: "an assistant never takes an epoch key")
        }
        var added: [(conversation: ConversationID, epoch: UInt64, key: SymmetricKey)] = []
        for envelope in envelopes {
            guard !membership.keyring.has(conversation: envelope.conversation, epoch: envelope.epoch) else { continue }
            switch Self.openConversationKey(envelope, log: log, assistant: assistant, id: me, key: identity.agreement) {

            case .opened(let key): added.append((envelope.conversation, envelope.epoch, key))
            case .refused(let reason):
                events.append(SecurityEvent(.keyEnvelopeRejected, device: envelope.sender, detail: reason))
            }
        }
        let now = now()
        let before = membership
        let cipher = cipher
        do {
            try store.write { tx in
                try membership.addScopedKeys(added, tx, cipher: cipher)
                for event in events { try raise(event, tx, &output) }
                // A snapshot served before its key starts the conversation first: its change
                // sets held for the key then follow it in their chains.
                if !added.isEmpty { try loadAwaitingSnapshots(tx, &output) }
                if !added.isEmpty { try retryHeld(after: nil, tx, &output, now: now) }
            }
        } catch {
            membership = before
            throw error
        }
        return output
    }

    static func openConversationKey(
        _ envelope: ConversationKeyEnvelope, log: DeviceLog, assistant: AssistantMember, id: DeviceID, key: X25519PrivateKey
    ) -> EnvelopeOutcome {
        guard envelope.account == log.account else { return .refused("envelope for another account") }
        guard assistant.terms.contains(where: { $0.covers(envelope.conversation) }) else {
            return .refused("a key of a conversation outside this assistant's scope")
        }
        guard let sender = log.members[envelope.sender], !sender.isRecoveryKey else {
            return .refused("sender is not a device of the account")
        }
        guard let start = log.entries.firstIndex(where: { $0.epoch == envelope.epoch }) else {
            return .refused("epoch \(envelope.epoch) has not started")
        }
        if let removedAt = sender.removedAt, removedAt <= UInt64(start) {
            return .refused("sender was removed before epoch \(envelope.epoch) began")
        }
        do {
            return .opened(try envelope.open(with: key, recipient: id, senderKey: sender.signingKey))
        } catch {
            return .refused("envelope check failed: \(error)")
        }
    }

    /// Joins the account as the assistant a verified log grants (no epoch key, only the
    /// conversation keys that open).
    func joinAsAssistant(log: DeviceLog, envelopes: [ConversationKeyEnvelope]) throws(ClientError) {
        guard membership.log == nil else { throw .alreadyInitialized }
        guard let assistant = log.assistants[me], assistant.endedAt == nil,
            assistant.agreementKey == identity.agreement.publicKey
        else { throw .assistantNotGranted }
        try adopt(log: log, keys: [:])
        // Its first catch-up starts from cursor 0: it fetches the whole scope's history.
        try recordScopeHistory(through: log.headIndex)
        _ = try receiveConversationKeys(envelopes)
    }
}

/// An assistant of the account, as `cloak assistant list` shows it and a conversation's view
/// lists those that can read it.
public struct AssistantInfo: Sendable, Hashable {
    /// Its id (BLAKE2b-128 of its Ed25519 key, like a device's).
    public let id: DeviceID
    /// The conversations it may read and write now (its last ones, once revoked).
    public let scope: [ConversationID]
    /// When its grant ends (ms since the Unix epoch).
    public let expiresAtMillis: UInt64
    /// When it was first granted (the granting device's clock, ms since the Unix epoch).
    public let grantedAtMillis: UInt64
    /// False once revoked.
    public let isActive: Bool
    /// Why it ended, once revoked.
    public let endReason: AssistantEndReason?
    /// Active and not past its expiry by this device's clock: it can read its scope now.
    public let canRead: Bool

    init(id: DeviceID, _ assistant: AssistantMember, log: DeviceLog, now: UInt64) {
        self.id = id
        scope = assistant.current.scope
        expiresAtMillis = assistant.current.expiresAtMs
        grantedAtMillis = log.entries[Int(assistant.addedAt)].createdAtMs
        isActive = assistant.endedAt == nil
        endReason = assistant.endReason
        canRead = isActive && now < assistant.current.expiresAtMs
    }
}

extension ClientCore {
    /// An assistant's client refuses locally what every device would refuse (§29): writing
    /// outside its current scope, after its expiry, or anything but its own messages.
    func checkAssistantRights(_ ops: [CRDTOperation], in conversation: ConversationID) throws(ClientError) {
        guard checksOwnAssistantRights, let log = membership.log, let assistant = log.assistants[me] else { return }
        guard assistant.endedAt == nil else { throw .removedFromAccount }
        let terms = assistant.current
        guard terms.covers(conversation) else { throw .notPermitted("that conversation is outside this assistant's scope") }
        if let violation = AssistantRights.violation(ops, author: me.replicaID, expiresAtMs: terms.expiresAtMs) {
            throw .notPermitted(violation.kind == .assistantExpired ? "this assistant's grant has expired" : violation.detail)
        }
    }
}

extension ClientCore {
    /// The earliest expiry of an active assistant (a device wakes then to end its access).
    var nextAssistantExpiry: UInt64? {
        guard let log = membership.log, !isAssistant else { return nil }
        return log.activeAssistants.compactMap { log.assistants[$0]?.current.expiresAtMs }.min()
    }
}
