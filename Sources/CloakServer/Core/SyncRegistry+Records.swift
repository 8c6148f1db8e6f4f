import CloakProtocol
import Logging
import Metrics
import Synchronization

extension SyncRegistry {
    /// Appends a device-log entry if it extends the current head under the log rules, and
    /// closes the live connections of a device it removes (or of a recovery key it replaces).
    /// The signer must be the authenticated device, unless `restore` (PROTOCOL.md §18): then any
    /// member may re-append an entry a restored server forgot, and the chain rules (signer
    /// active at the previous head, signature, index, prev_hash) are what admit it.
    func appendDeviceLog(
        _ connection: ConnectionID, session: Session, requestID: UInt64, entry: DeviceLogEntry, bytes: [UInt8],
        restore: Bool = false
    ) throws(ProtocolError) {
        try state.withLock { (s) throws(ProtocolError) in
            guard let account = s.accounts[session.account], !account.needsReload else { throw .internalError }
            guard restore || entry.signer == session.device else { throw .wrongAuthor }
            guard entry.index == UInt64(account.log.entries.count), entry.prevHash == account.log.head else {
                throw .deviceLogConflict
            }
            guard account.log.entries.count < configuration.limits.maxDeviceLogEntries else {
                throw .invalidDeviceLog("the device log is full")
            }
            if session.isRecoveryKey, entry.kind != .addDevice {
                throw .invalidDeviceLog("a recovery session may only add devices")
            }
            if !restore, entry.kind == .removeDevice, let removed = entry.removedDevice {
                try Self.checkCutoffs(entry.cutoffs, of: removed, against: account.chains)
            }
            if !restore, entry.kind == .revokeAssistant || entry.kind == .restrictAssistant, let assistant = entry.assistant {
                // A revocation cuts every chain of the assistant; a restriction those it removes.
                let removed = entry.kind == .restrictAssistant ? Set(entry.scope) : nil
                try Self.checkCutoffs(entry.cutoffs, of: assistant, in: removed, against: account.chains)
            }
            var log = account.log
            try log.append(entry)
            s.accounts[session.account]?.log = log
            stage(
                account: session.account, rows: 1, completion: .done(connection, requestID: requestID), in: &s
            ) { pending in
                pending.batch.logEntries.append(.init(account: session.account, index: entry.index, bytes: bytes))
            }
            // Once durable, the account's other devices are told the log grew: a device added by
            // linking or recovery is announced on every other device (deviceAdded).
            var notice = Cloak_V1_AccountNotice()
            notice.deviceLogLength = UInt64(log.entries.count)
            s.pending.completions.append(
                Waiting(account: session.account, completion: .notice(session.account, notice, except: connection)))
            closeMembersNoLongerActive(session.account, in: &s)
        }
    }

    /// A removal must cut the removed device's chains exactly where the server's end (§10): a
    /// cut-off short of a change set the server stores (and may have delivered, so that others
    /// built on it) would make every device drop it and what depends on it.
    static func checkCutoffs(
        _ cutoffs: [RemovalCutoff], of device: DeviceID, in conversations: Set<ConversationID>? = nil,
        against chains: [ChainKey: ChainPosition]
    ) throws(ProtocolError) {
        let stored = chains.filter { key, _ in
            key.author == device && (conversations?.contains(key.conversation) ?? true)
        }
        for (key, position) in stored {
            guard let cutoff = cutoffs.first(where: { $0.conversation == key.conversation }) else {
                throw .staleCutoffs("no cut-off for a conversation the device wrote \(position.seq) change sets in")
            }
            guard cutoff.seq == position.seq, cutoff.hash == position.hash else {
                throw .staleCutoffs("a cut-off at seq \(cutoff.seq) where the server stores seq \(position.seq)")
            }
        }
    }

    func closeMembersNoLongerActive(_ account: AccountID, in s: inout RegistryState) {
        guard let state = s.accounts[account] else { return }
        for connection in state.connections.sorted() {
            guard let session = s.connections[connection]?.session else { continue }
            if session.isAssistant {
                // Revoked: refused like a removed device. Restricted: its subscription and any
                // catch-up in flight were for the old scope, so it reconnects to the new one.
                guard let assistant = state.assistant(session.device) else {
                    close(connection, .deviceNotActive, requestID: 0, in: &s)
                    continue
                }
                if assistant.current.from == state.log.headIndex, assistant.terms.count > 1,
                    state.log.entries[Int(state.log.headIndex)].kind == .restrictAssistant
                {
                    close(connection, .outOfScope("the assistant's scope was restricted; reconnect"), requestID: 0, in: &s)
                }
                continue
            }
            let member = state.member(session.device)
            if member == nil || member?.isRecoveryKey != session.isRecoveryKey {
                close(connection, .deviceNotActive, requestID: 0, in: &s)
            }
        }
    }

    /// Stores key envelopes already checked against the session (first copy per recipient and
    /// epoch wins in the store).
    func putKeyEnvelopes(
        _ connection: ConnectionID, session: Session, requestID: UInt64, envelopes: [WriteBatch.EnvelopeRow]
    ) throws(ProtocolError) {
        try state.withLock { (s) throws(ProtocolError) in
            guard let account = s.accounts[session.account], !account.needsReload else { throw .internalError }
            let size = envelopes.reduce(Int64(0)) { $0 + Int64($1.bytes.count) }
            guard account.storedBytes + size <= configuration.limits.maxAccountBytes, size <= totalRoom(in: s) else {
                throw .quotaExceeded
            }
            s.accounts[session.account]?.storedBytes += size
            s.totalStoredBytes += size
            stage(
                account: session.account, rows: envelopes.count, completion: .done(connection, requestID: requestID),
                in: &s
            ) { pending in
                pending.batch.envelopes += envelopes
            }
        }
    }

    /// Stores a snapshot if it extends the conversation's newest one (ADV-12 lineage).
    func putSnapshot(
        _ connection: ConnectionID, session: Session, requestID: UInt64, snapshot: Snapshot, bytes: [UInt8]
    ) throws(ProtocolError) {
        try state.withLock { (s) throws(ProtocolError) in
            guard let account = s.accounts[session.account], !account.needsReload else { throw .internalError }
            let conversation = snapshot.header.conversation
            guard snapshot.header.prevSnapshotHash == (account.newestSnapshots[conversation] ?? .zero) else {
                throw .staleSnapshot
            }
            let growth = Int64(bytes.count) - (account.snapshotBytes[conversation] ?? 0)
            guard account.storedBytes + growth <= configuration.limits.maxAccountBytes, growth <= totalRoom(in: s) else {
                throw .quotaExceeded
            }
            s.totalStoredBytes += growth
            s.accounts[session.account]?.newestSnapshots[conversation] = snapshot.hash
            s.accounts[session.account]?.snapshotBytes[conversation] = Int64(bytes.count)
            s.accounts[session.account]?.storedBytes += growth
            stage(
                account: session.account, rows: 1, completion: .done(connection, requestID: requestID), in: &s
            ) { pending in
                pending.batch.snapshots.append(
                    .init(account: session.account, conversation: conversation, hash: snapshot.hash, bytes: bytes))
            }
        }
    }

    /// Stores the account's recovery blob; it must name the log's current recovery key.
    func putRecovery(_ connection: ConnectionID, session: Session, requestID: UInt64, record: RecoveryRecord)
        throws(ProtocolError)
    {
        try state.withLock { (s) throws(ProtocolError) in
            guard let account = s.accounts[session.account], !account.needsReload else { throw .internalError }
            guard account.log.recoveryKey?.id == record.recoveryKeyID else {
                throw .invalidField("recovery_key_id is not the device log's current recovery key")
            }
            // A new blob starts its guess count at 0 (the stores reset it too) and keeps the notice
            // of guesses before a success: whoever recovered cannot erase it by setting a new one.
            var kept = record
            kept.noticeFailures = account.recovery?.noticeFailures ?? 0
            kept.noticeAtMs = account.recovery?.noticeAtMs ?? 0
            s.accounts[session.account]?.recovery = kept
            stage(
                account: session.account, rows: 1, completion: .done(connection, requestID: requestID), in: &s
            ) { pending in
                pending.batch.recoveries.append(record)
            }
        }
    }

    /// Stores a pairing-mailbox slot (`session` nil: a new device's answer before authentication,
    /// counted against no account).
    func putMailbox(_ connection: ConnectionID, session: Session?, requestID: UInt64, row: WriteBatch.MailboxRow) {
        state.withLock { s in
            stage(
                account: session?.account ?? Self.noAccount, rows: 1, completion: .done(connection, requestID: requestID),
                versioned: false, in: &s
            ) { pending in
                pending.batch.mailboxes.append(row)
            }
        }
    }

    /// Records the device's applied cursor (compaction waits for every active device).
    func acknowledge(_ connection: ConnectionID, session: Session, requestID: UInt64, cursor: UInt64)
        throws(ProtocolError)
    {
        try state.withLock { (s) throws(ProtocolError) in
            guard let account = s.accounts[session.account], !account.needsReload else { throw .internalError }
            // With a shared store, fanout reads may have sent cursors this process has not
            // reloaded yet.
            guard cursor <= max(account.committedHead, account.deliveredHead) else {
                throw .invalidField("cursor is beyond the account's head")
            }
            let completion: Completion? = requestID == 0 ? nil : .done(connection, requestID: requestID)
            stage(account: session.account, rows: 1, completion: completion, versioned: false, in: &s) { pending in
                pending.batch.cursorAcks.append(.init(account: session.account, device: session.device, cursor: cursor))
            }
        }
    }
}
