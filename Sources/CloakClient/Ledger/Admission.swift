public import CloakProtocol

/// What a receiver decides about a change set before decrypting it (PROTOCOL.md
/// §9 "Receiving a change set"). The checks run in this order, and the first that fails decides: account,
/// author known, signature, device-log position (active at the named head, head hash, epoch,
/// removal cut-off), epoch key available, chain position.
enum Verdict: Equatable, Sendable {
    /// Passed every check: decrypt and apply.
    case accept
    /// Already applied (same hash at that chain position): no side effects (ADV-04).
    case duplicate
    /// Cannot be decided yet; keep it and fetch what is missing.
    case hold(HoldReason)
    /// Never applied; reported as a security event.
    case reject(SecurityEvent.Kind, String)
}

/// What a held change set waits for.
enum HoldReason: Equatable, Sendable {
    /// The device-log entry at this index (fetch the log).
    case deviceLog(index: UInt64)
    /// The epoch key (fetch key envelopes).
    case epochKey(UInt64)
    /// Earlier change sets of the author's chain (fetch them).
    case gap(expectedSeq: UInt64)

    var description: String {
        switch self {
        case .deviceLog(let index): "device-log entry \(index)"
        case .epochKey(let epoch): "epoch \(epoch) key"
        case .gap(let seq): "chain gap before seq \(seq)"
        }
    }
}

/// The last accepted change set of one author in one conversation.
@_spi(Simulation)
public struct ChainPosition: Equatable, Sendable {
    /// Its sequence number.
    public var seq: UInt64
    /// Its hash.
    public var hash: ChangeSetHash
    /// The author equivocated in this chain: nothing more of it is accepted.
    public var forked: Bool = false

    /// Creates a position.
    public init(seq: UInt64, hash: ChangeSetHash, forked: Bool = false) {
        self.seq = seq
        self.hash = hash
        self.forked = forked
    }
}

/// One author's chain in one conversation.
@_spi(Simulation)
public struct ChainKey: Hashable, Sendable {
    /// The conversation.
    public let conversation: ConversationID
    /// The author.
    public let author: DeviceID

    /// Creates a key.
    public init(conversation: ConversationID, author: DeviceID) {
        self.conversation = conversation
        self.author = author
    }
}

/// The checks that need no decryption, as a pure function of the change set and what this
/// device knows, so they are unit-testable and identical on every device.
enum Admission {
    static func verdict(
        for changeSet: ChangeSet, account: AccountID, log: DeviceLog, signatureVerified: Bool = false,
        hasKey: (ConversationID, UInt64) -> Bool,
        chain: ChainPosition?, storedHash: (UInt64) -> ChangeSetHash?
    ) -> Verdict {
        let header = changeSet.header
        guard header.account == account else { return .reject(.wrongAccount, "change set for another account") }
        // A device (never the recovery key) or an assistant (PROTOCOL.md §29).
        guard let signingKey = log.writerKey(header.author) else {
            // An author added by an entry we have not fetched yet is held, not rejected
            // (PROTOCOL.md §10 rule 2): only a log that covers the named index can say "never".
            if header.deviceLogIndex >= UInt64(log.entries.count) { return .hold(.deviceLog(index: header.deviceLogIndex)) }
            return .reject(.unknownAuthor, "author was never a device of this account")
        }
        if !signatureVerified {
            do { try changeSet.verifySignature(signingKey) } catch {
                return .reject(.badSignature, "change set signature does not verify")
            }
        }
        if let verdict = logVerdict(header, hash: changeSet.hash, log: log) { return verdict }
        guard hasKey(header.conversation, header.epoch) else { return .hold(.epochKey(header.epoch)) }
        return chainVerdict(header, hash: changeSet.hash, chain: chain, storedHash: storedHash)
    }

    /// Device-log position: PROTOCOL.md §10's admission rule (active at the named head, head
    /// hash, epoch, removal cut-off), shared with every implementation through
    /// ``DeviceLog/admits(changeSetHeader:hash:)``.
    static func logVerdict(_ header: ChangeSetHeader, hash: ChangeSetHash, log: DeviceLog) -> Verdict? {
        switch log.admits(changeSetHeader: header, hash: hash) {
        case .accepted:
            return nil
        case .holdForDeviceLog(let index):
            return .hold(.deviceLog(index: index))
        case .rejected(let reason):
            let kind: SecurityEvent.Kind =
                switch reason {
                case .wrongAccount: .wrongAccount
                case .deviceLogFork: .deviceLogHeadMismatch
                case .authorNotActive: .authorNotActive
                case .wrongEpoch: .wrongEpoch
                case .noCutoffForConversation, .beyondRemovalCutoff: .beyondRemovalCutoff
                case .badSignature: .badSignature
                case .outsideAssistantScope: .assistantOutOfScope
                }
            return .reject(kind, reason.description)
        }
    }

    static func chainVerdict(
        _ header: ChangeSetHeader, hash: ChangeSetHash, chain: ChainPosition?,
        storedHash: (UInt64) -> ChangeSetHash?
    ) -> Verdict {
        let last = chain?.seq ?? 0
        if header.seq <= last {
            let stored = header.seq == last ? chain?.hash : storedHash(header.seq)
            if let stored, stored != hash { return .reject(.fork, "two change sets for seq \(header.seq)") }
            return .duplicate
        }
        if chain?.forked == true { return .reject(.fork, "author's chain in this conversation is forked") }
        guard header.seq == last + 1 else { return .hold(.gap(expectedSeq: last + 1)) }
        let expectedPrev = chain?.hash ?? .zero
        guard header.prevHash == expectedPrev else {
            return .reject(.fork, "prev_hash does not match the author's previous change set")
        }
        return .accept
    }
}
