import CloakProtocol

extension ClientCore {
    /// A removal's or an assistant's end's cut-offs (PROTOCOL.md §10, §29): per conversation,
    /// the newest change set of `device` this device received with a valid signature — the one
    /// it accepted, or a newer one it refused after admission (an assistant writing as the user
    /// or after its expiry, undecryptable content). An honest server stores those too and
    /// refuses a cut-off short of them (`STALE_CUTOFFS`), so counting only accepted ones left a
    /// hostile assistant's refused writes blocking its revocation for good (seed 131). Naming a
    /// refused change set admits nothing: it stays refused by the rule that refused it.
    func cutoffs(of device: DeviceID) -> [RemovalCutoff] {
        var newest: [ConversationID: ChainPosition] = [:]
        for (key, position) in ledger.chains where key.author == device { newest[key.conversation] = position }
        for (key, position) in refusedHeads where key.author == device {
            if position.seq > newest[key.conversation]?.seq ?? 0 { newest[key.conversation] = position }
        }
        return newest.map { RemovalCutoff(conversation: $0.key, seq: $0.value.seq, hash: $0.value.hash) }
            .sorted { $0.conversation < $1.conversation }
    }

    /// An authentic change set (admitted by §10, its signature verified, at its chain's next
    /// position) refused after decryption (PROTOCOL.md §9): its chain moves past it, unapplied
    /// and unstored, so the author's next change sets are judged by their own checks instead
    /// of waiting for a gap that never fills; every member judges it alike, so every member
    /// moves alike. Returns true: held successors may now follow.
    func passRefused(_ changeSet: ChangeSet, _ tx: any StoreTransaction) throws -> Bool {
        noteRefusedAfterAdmission(changeSet)
        try ledger.pass(changeSet, tx)
        return true
    }

    /// An authentic change set (admitted by §10, its signature verified) refused after
    /// decryption: remembered as its chain's refused head for the cut-offs above.
    func noteRefusedAfterAdmission(_ changeSet: ChangeSet) {
        let key = ChainKey(conversation: changeSet.header.conversation, author: changeSet.header.author)
        guard changeSet.header.seq > refusedHeads[key]?.seq ?? 0 else { return }
        refusedHeads[key] = ChainPosition(seq: changeSet.header.seq, hash: changeSet.hash)
    }
}
