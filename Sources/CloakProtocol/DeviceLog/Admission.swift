import CloakCrypto

/// What a receiver does with a change set, by the device-log membership rule of PROTOCOL.md
/// §"Admission" (ADV-09, ADV-31). Every honest device evaluates the same pure function over
/// the same signed log, so all of them accept and reject the same change sets.
///
/// ```swift
/// switch log.admits(changeSet) {
/// case .accepted: apply(changeSet)                      // after the chain checks
/// case .holdForDeviceLog(let index): hold(changeSet); fetchDeviceLog(through: index)
/// case .rejected(let reason): alarm(reason)             // never applied
/// }
/// ```
public enum Admission: Sendable, Hashable {
    /// The author may write this change set.
    case accepted
    /// The change set names a device-log entry this receiver does not have yet: keep it
    /// (bounded), fetch the log through `index`, and ask again.
    case holdForDeviceLog(index: UInt64)
    /// The change set must never be applied.
    case rejected(AdmissionRejection)
}

/// Why ``DeviceLog/admits(changeSetHeader:hash:)`` refused a change set. Each case names the
/// failed check of the rule.
public enum AdmissionRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// The header names another account.
    case wrongAccount
    /// The header's `device_log_head` differs from this receiver's entry at that index: the
    /// author saw another device log (a forked log; alarm).
    case deviceLogFork(atIndex: UInt64)
    /// The author is not a device active at the named index (never added, added later,
    /// removed at or before it, or the recovery key, which never writes change sets).
    case authorNotActive
    /// The header's epoch is not the one in effect at the named index.
    case wrongEpoch(expected: UInt64, got: UInt64)
    /// The author has been removed and the removal keeps nothing of it in this conversation.
    case noCutoffForConversation
    /// The author has been removed and this change set lies after the removal's cut-off for
    /// this conversation (or has the cut-off's seq but another hash).
    case beyondRemovalCutoff(cutoffSeq: UInt64)
    /// The author's signature does not verify with the key the device log lists for it.
    case badSignature
    /// The author is an assistant whose scope at the named index does not include the
    /// conversation (PROTOCOL.md §29).
    case outsideAssistantScope

    /// A log line naming the failed check (ids only, never payload bytes).
    public var description: String {
        switch self {
        case .wrongAccount: "change set names another account"
        case .deviceLogFork(let index): "device_log_head differs from the verified log at index \(index)"
        case .authorNotActive: "author is not an active device at the named device-log index"
        case .wrongEpoch(let expected, let got): "epoch \(got) where the log has \(expected)"
        case .noCutoffForConversation: "author was removed and keeps nothing in this conversation"
        case .beyondRemovalCutoff(let seq): "author was removed; its change sets after seq \(seq) are invalid"
        case .badSignature: "author signature does not verify"
        case .outsideAssistantScope: "assistant wrote in a conversation outside its scope at the named device-log index"
        }
    }
}

extension DeviceLog {
    /// THE RULE for a change set by device D, over this verified log (PROTOCOL.md
    /// §"Admission"). Accepted iff all hold, checked in this order:
    ///
    /// 1. the header names this log's account;
    /// 2. the named `device_log_index` exists here (otherwise ``Admission/holdForDeviceLog(index:)``);
    /// 3. the named `device_log_head` equals this log's entry hash at that index;
    /// 4. D is an active device at that index (added at or before it, not removed at or before it);
    /// 5. the header's epoch is the epoch in effect at that index;
    /// 6. if this log removes D (at any index), the change set is within the removal's cut-off
    ///    for its conversation: `seq < cutoff.seq`, or `seq == cutoff.seq` and
    ///    `hash == cutoff.hash`. No cut-off for the conversation rejects.
    ///
    /// Rule 6 is what makes a write concurrent with D's removal deterministic: whether a device
    /// learned of the removal before or after the change set arrived, once it knows the removal
    /// it keeps exactly the change sets the signed cut-off keeps. The signature and the
    /// per-author chain (gap/fork) checks are separate; ``admits(_:)`` adds the signature.
    public func admits(changeSetHeader header: ChangeSetHeader, hash: ChangeSetHash) -> Admission {
        guard header.account == account else { return .rejected(.wrongAccount) }
        let index = header.deviceLogIndex
        guard let entryHash = self.hash(atIndex: index), let epoch = epoch(atIndex: index) else {
            return .holdForDeviceLog(index: index)
        }
        guard entryHash == header.deviceLogHead else { return .rejected(.deviceLogFork(atIndex: index)) }
        if let assistant = assistants[header.author] {
            return admitsAssistant(assistant, header: header, hash: hash, epoch: epoch)
        }
        guard isActive(header.author, atIndex: index) else { return .rejected(.authorNotActive) }
        guard header.epoch == epoch else { return .rejected(.wrongEpoch(expected: epoch, got: header.epoch)) }
        guard let removal = removal(of: header.author) else { return .accepted }
        guard let cutoff = removal.cutoffs.first(where: { $0.conversation == header.conversation }) else {
            return .rejected(.noCutoffForConversation)
        }
        if header.seq < cutoff.seq || (header.seq == cutoff.seq && hash == cutoff.hash) { return .accepted }
        return .rejected(.beyondRemovalCutoff(cutoffSeq: cutoff.seq))
    }

    /// ``admits(changeSetHeader:hash:)`` plus the author's signature, checked with the signing
    /// key this log lists for the author. A forged change set from a known author is rejected at
    /// once; one from an author this log has never seen is held like any change set naming an
    /// unknown index (the fetched log then decides).
    public func admits(_ changeSet: ChangeSet) -> Admission {
        if let key = writerKey(changeSet.header.author) {
            do { try changeSet.verifySignature(key) } catch { return .rejected(.badSignature) }
        }
        return admits(changeSetHeader: changeSet.header, hash: changeSet.hash)
    }
}
