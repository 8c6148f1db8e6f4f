public import CloakCrypto

/// An AI assistant the device log granted access to some conversations (PROTOCOL.md §29). It
/// is never a member: it signs no entry and no envelope, holds no epoch key, and may only write
/// change sets into the conversations its scope names at the head it writes under.
public struct AssistantMember: Sendable, Hashable {
    /// A stretch of the log during which the grant's terms stay the same: from entry `from` on,
    /// the assistant may use `scope` until `expiresAtMs`.
    public struct Terms: Sendable, Hashable {
        /// Index of the entry that set these terms (a grant or a restriction).
        public let from: UInt64
        /// The conversations it may read and write, sorted.
        public let scope: [ConversationID]
        /// When the grant ends, ms since the Unix epoch.
        public let expiresAtMs: UInt64

        /// Whether `conversation` is in ``scope`` (binary search: scopes are sorted).
        public func covers(_ conversation: ConversationID) -> Bool {
            var low = 0
            var high = scope.count
            while low < high {
                let mid = (low + high) / 2
                if scope[mid] == conversation { return true }
                if scope[mid] < conversation { low = mid + 1 } else { high = mid }
            }
            return false
        }
    }

    /// Its Ed25519 key (change sets are verified with it).
    public let signingKey: Ed25519PublicKey
    /// Its X25519 key (conversation keys are sealed to it).
    public let agreementKey: X25519PublicKey
    /// Index of the entry that first granted it.
    public let addedAt: UInt64
    /// Index of the `revoke_assistant` entry that ended it.
    public internal(set) var endedAt: UInt64?
    /// Why it ended.
    public internal(set) var endReason: AssistantEndReason?
    /// Its terms over time, oldest first (a grant, then widenings and restrictions).
    public internal(set) var terms: [Terms]
    /// Indices of the entries that removed conversations from its scope (restrictions and the
    /// revocation), oldest first: each carries the cut-offs of what it removed.
    public internal(set) var removals: [UInt64] = []

    /// Whether it is granted (not yet revoked) in the state after entry `index`.
    public func isActive(atIndex index: UInt64) -> Bool {
        addedAt <= index && (endedAt.map { index < $0 } ?? true)
    }

    /// The terms in effect after entry `index`, if it was granted then.
    public func terms(atIndex index: UInt64) -> Terms? {
        guard isActive(atIndex: index) else { return nil }
        return terms.last { $0.from <= index }
    }

    /// The current terms (the last ones, whether or not it was revoked since).
    public var current: Terms { terms[terms.count - 1] }
}

extension DeviceLog {
    /// Assistants granted now (not revoked; expiry is a matter of clocks, not of the log),
    /// sorted by id.
    public var activeAssistants: [DeviceID] {
        assistants.filter { $0.value.endedAt == nil }.map(\.key).sorted()
    }

    /// The key that signs `author`'s change sets: a device's (never the recovery key's) or an
    /// assistant's.
    public func writerKey(_ author: DeviceID) -> Ed25519PublicKey? {
        if let member = members[author] { return member.isRecoveryKey ? nil : member.signingKey }
        return assistants[author]?.signingKey
    }

    /// Applies a grant, revoke or restrict entry (PROTOCOL.md §29 "Entries"), after the chain
    /// and signature checks of ``append(_:)``.
    mutating func applyAssistantEntry(_ entry: DeviceLogEntry) throws(ProtocolError) {
        switch entry.kind {
        case .grantAssistant: try applyGrant(entry)
        case .revokeAssistant: try applyEnd(entry, removing: nil)
        case .restrictAssistant: try applyEnd(entry, removing: entry.scope)
        default: throw .invalidDeviceLog("not an assistant entry")
        }
    }

    private mutating func applyGrant(_ entry: DeviceLogEntry) throws(ProtocolError) {
        guard entry.epoch == currentEpoch else { throw .invalidDeviceLog("granting an assistant must keep the epoch") }
        guard let key = entry.subjectSigningKey, let agreement = entry.subjectAgreementKey, let id = entry.subject else {
            throw .invalidDeviceLog("missing assistant keys")
        }
        guard entry.expiresAtMs > entry.createdAtMs else { throw .invalidDeviceLog("the grant expires before it is made") }
        guard members[id] == nil else { throw .invalidDeviceLog("\(id) is a device, not an assistant") }
        let terms = AssistantMember.Terms(from: entry.index, scope: entry.scope, expiresAtMs: entry.expiresAtMs)
        guard var assistant = assistants[id] else {
            assistants[id] = AssistantMember(signingKey: key, agreementKey: agreement, addedAt: entry.index, terms: [terms])
            return
        }
        // ADV-30: an assistant that was revoked is never granted again under the same keys.
        guard assistant.endedAt == nil else { throw .invalidDeviceLog("assistant \(id) was revoked") }
        guard assistant.agreementKey == agreement else { throw .invalidDeviceLog("assistant \(id) has other keys") }
        // Narrowing must rotate keys: it is a restriction, never a grant.
        guard Set(entry.scope).isSuperset(of: assistant.current.scope) else {
            throw .invalidDeviceLog("a grant cannot narrow a scope; restrict_assistant does")
        }
        assistant.terms.append(terms)
        assistants[id] = assistant
    }

    /// A revocation (`removing` nil: the whole scope) or a restriction.
    private mutating func applyEnd(_ entry: DeviceLogEntry, removing: [ConversationID]?) throws(ProtocolError) {
        guard entry.epoch == currentEpoch + 1 else { throw .invalidDeviceLog("ending access must advance the epoch by one") }
        guard let id = entry.assistant, var assistant = assistants[id], assistant.endedAt == nil else {
            throw .invalidDeviceLog("no active assistant \(entry.assistant.map { "\($0)" } ?? "")")
        }
        let current = assistant.current
        let removed = Set(removing ?? current.scope)
        guard removed.isSubset(of: current.scope) else {
            throw .invalidDeviceLog("a restriction removes a conversation that is not in the scope")
        }
        guard entry.cutoffs.allSatisfy({ removed.contains($0.conversation) }) else {
            throw .invalidDeviceLog("a cut-off names a conversation the entry does not remove")
        }
        if removing == nil {
            assistant.endedAt = entry.index
            assistant.endReason = entry.endReason
        } else {
            let remaining = current.scope.filter { !removed.contains($0) }
            guard !remaining.isEmpty else { throw .invalidDeviceLog("a restriction that removes everything is a revocation") }
            assistant.terms.append(.init(from: entry.index, scope: remaining, expiresAtMs: current.expiresAtMs))
        }
        assistant.removals.append(entry.index)
        assistants[id] = assistant
        newestEpochStartIndex = entry.index
    }

    /// §29 admission for a change set by assistant `assistant` (rules 4–6 of §10, for an
    /// assistant): granted at the named index with the conversation in its scope there, the
    /// epoch of that index, and — if a later entry removed the conversation from its scope (a
    /// restriction or the revocation) — within the first such entry's cut-off.
    func admitsAssistant(_ assistant: AssistantMember, header: ChangeSetHeader, hash: ChangeSetHash, epoch: UInt64)
        -> Admission
    {
        let index = header.deviceLogIndex
        guard let terms = assistant.terms(atIndex: index) else { return .rejected(.authorNotActive) }
        guard terms.covers(header.conversation) else { return .rejected(.outsideAssistantScope) }
        guard header.epoch == epoch else { return .rejected(.wrongEpoch(expected: epoch, got: header.epoch)) }
        for at in assistant.removals where at > index {
            let entry = entries[Int(at)]
            guard entry.kind == .revokeAssistant || entry.scope.contains(header.conversation) else { continue }
            guard let cutoff = entry.cutoffs.first(where: { $0.conversation == header.conversation }) else {
                return .rejected(.noCutoffForConversation)
            }
            if header.seq < cutoff.seq || (header.seq == cutoff.seq && hash == cutoff.hash) { return .accepted }
            return .rejected(.beyondRemovalCutoff(cutoffSeq: cutoff.seq))
        }
        return .accepted
    }
}
