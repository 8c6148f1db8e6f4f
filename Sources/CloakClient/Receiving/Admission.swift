import CloakProtocol

/// What a receiver decides about a change set before decrypting it (PROTOCOL.md
/// §"Receiving"). The checks run in this order, and the first that fails decides: account,
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
struct ChainPosition: Equatable, Sendable {
    var seq: UInt64
    var hash: ChangeSetHash
    var forked: Bool = false
}

struct ChainKey: Hashable, Sendable {
    let conversation: ConversationID
    let author: DeviceID
}

/// The checks that need no decryption, as a pure function of the change set and what this
/// device knows, so they are unit-testable and identical on every device.
enum Admission {
    static func verdict(
        for changeSet: ChangeSet, account: AccountID, log: DeviceLog, hasEpochKey: (UInt64) -> Bool,
        chain: ChainPosition?, storedHash: (UInt64) -> ChangeSetHash?
    ) -> Verdict {
        let header = changeSet.header
        guard header.account == account else { return .reject(.wrongAccount, "change set for another account") }
        guard let member = log.members[header.author], !member.isRecoveryKey else {
            return .reject(.unknownAuthor, "author was never a device of this account")
        }
        do { try changeSet.verifySignature(member.signingKey) } catch {
            return .reject(.badSignature, "change set signature does not verify")
        }
        if let verdict = logVerdict(header, hash: changeSet.hash, log: log) { return verdict }
        guard hasEpochKey(header.epoch) else { return .hold(.epochKey(header.epoch)) }
        return chainVerdict(header, hash: changeSet.hash, chain: chain, storedHash: storedHash)
    }

    /// Device-log position: the ADV-09 rule of PROTOCOL.md §"Removal".
    static func logVerdict(_ header: ChangeSetHeader, hash: ChangeSetHash, log: DeviceLog) -> Verdict? {
        guard let headHash = log.hash(atIndex: header.deviceLogIndex) else {
            return .hold(.deviceLog(index: header.deviceLogIndex))
        }
        guard headHash == header.deviceLogHead else {
            return .reject(.deviceLogHeadMismatch, "names a device-log head we do not have at that index")
        }
        guard log.isActive(header.author, atIndex: header.deviceLogIndex) else {
            return .reject(.authorNotActive, "author not active at the head it names")
        }
        guard log.epoch(atIndex: header.deviceLogIndex) == header.epoch else {
            return .reject(.wrongEpoch, "epoch differs from the one in effect at its head")
        }
        if let removal = log.removal(of: header.author) {
            let cutoff = removal.cutoffs.first { $0.conversation == header.conversation }
            let within = cutoff.map { header.seq < $0.seq || (header.seq == $0.seq && hash == $0.hash) } ?? false
            guard within else { return .reject(.beyondRemovalCutoff, "written after its author's removal cut-off") }
        }
        return nil
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
