import CloakCrypto
import CloakProtocol
import Foundation
import Logging
import Synchronization

/// Passphrase recovery over the server's oblivious PRF (PROTOCOL.md §22; ADV-46): every
/// evaluation before authentication is a guess, counted durably before it is answered; enough
/// of them lock the account's recovery, and the account's devices are told each time. A
/// successful recovery (the recovery key authenticates) or a device's reset clears the count.
extension SyncRegistry {
    /// A recovering device's evaluation: the account's passphrase enrollment under its key
    /// version, unless recovery is locked. The answer waits for the counter to be durable, so a
    /// crash after answering can never hand out an uncounted guess. An account without a
    /// passphrase enrollment (`known`: it exists) or no account at all gets the same answer from
    /// a stand-in (``evaluateDecoy``), so an outsider cannot tell which accounts use one (§25).
    func evaluateRecovery(
        _ connection: ConnectionID, requestID: UInt64, account: AccountID, known: Bool, blinded: OPRF.Element,
        nowMs: UInt64
    ) throws(ProtocolError) {
        guard let keys = configuration.recoveryKeys else { throw .recoveryUnavailable }
        try state.withLock { (s) throws(ProtocolError) in
            var record: RecoveryRecord?
            if known {
                guard let cached = s.accounts[account], !cached.needsReload else { throw .internalError }
                record = cached.recovery
            }
            guard var record, let enrollment = Self.passphraseEnrollment(record) else {
                return try evaluateDecoy(
                    connection, requestID: requestID, account: account, known: known, blinded: blinded, keys: keys,
                    nowMs: nowMs, in: &s)
            }
            guard keys.has(version: enrollment.keyVersion) else { throw .recoveryUnavailable }
            if let until = lockedUntil(record), until > nowMs { throw .recoveryLocked(retryAfterMs: until - nowMs) }
            let evaluated = try Self.evaluate(blinded, keys: keys, account: account, version: enrollment.keyVersion)
            record.failures = record.failures &+ 1
            record.lastAttemptMs = nowMs
            s.accounts[account]?.recovery = record
            let reply = evaluation(evaluated, enrollment: enrollment, failures: record.failures)
            stageCounters(record, completion: .reply(connection, requestID: requestID, body: .recoveryEvaluation(reply)), in: &s)
            stageNotice(account, status: status(of: record, succeeded: false), in: &s)
            logger.info(
                "recovery evaluation counted",
                metadata: ["account": "\(account)", "failures": "\(record.failures)", "connection": "\(connection)"])
        }
    }

    /// The stand-in for an account without a passphrase enrollment, or an unknown one: the
    /// current key version, the default Argon2id cost, a salt derived from the server's key and
    /// the account, and an evaluation under the account's real OPRF key for that version — the
    /// same fields, sizes and errors as a real enrollment, the same on every query, so the
    /// guess simply derives a key that opens nothing. It is counted and locked out like a real
    /// one (in memory: nothing is stored for accounts that do not exist), and its reply waits
    /// for a commit like a real one's. An existing account's live devices are told.
    private func evaluateDecoy(
        _ connection: ConnectionID, requestID: UInt64, account: AccountID, known: Bool, blinded: OPRF.Element,
        keys: RecoveryKeySet, nowMs: UInt64, in s: inout RegistryState
    ) throws(ProtocolError) {
        var record = s.decoyGuesses[account] ?? RecoveryRecord(account: account, recoveryKeyID: DeviceID.zero, bytes: [])
        if let until = lockedUntil(record), until > nowMs { throw .recoveryLocked(retryAfterMs: until - nowMs) }
        let defaults = PasswordKDFParameters.recommended()
        let enrollment: RecoveryEnrollment
        do {
            enrollment = RecoveryEnrollment(
                keyVersion: keys.current,
                argon2: try PasswordKDFParameters(
                    opsLimit: defaults.opsLimit, memoryKiB: defaults.memoryKiB, salt: keys.decoySalt(for: account)))
        } catch { throw .internalError }
        let evaluated = try Self.evaluate(blinded, keys: keys, account: account, version: keys.current)
        record.failures = record.failures &+ 1
        record.lastAttemptMs = nowMs
        s.rememberDecoyGuess(record, limit: configuration.maxRecoveryStandIns)
        let reply = evaluation(evaluated, enrollment: enrollment, failures: record.failures)
        stage(
            account: account, rows: 0, completion: .reply(connection, requestID: requestID, body: .recoveryEvaluation(reply)),
            versioned: false, in: &s
        ) { _ in }
        if known {
            var notice = Cloak_V1_AccountNotice()
            notice.recovery = status(of: record, succeeded: false)
            sendNotice(notice, to: account, except: nil, in: &s)
        }
    }

    private func evaluation(_ evaluated: OPRF.Element, enrollment: RecoveryEnrollment, failures: UInt32)
        -> Cloak_V1_RecoveryEvaluation
    {
        var reply = Cloak_V1_RecoveryEvaluation()
        reply.evaluatedElement = Data(evaluated.bytes)
        reply.keyVersion = enrollment.keyVersion
        reply.kdfParameters = Data(enrollment.encoded)
        let threshold = configuration.recoveryFailuresBeforeLockout
        reply.attemptsLeft = threshold > failures ? threshold - failures : 0
        return reply
    }

    /// An active device's evaluation for a new enrollment, under the current key version: not
    /// a guess (the device is authenticated), so not counted; limited per account.
    func evaluateEnrollment(_ session: Session, blinded: OPRF.Element) throws(ProtocolError) -> Cloak_V1_RecoveryEvaluation {
        guard let keys = configuration.recoveryKeys else { throw .recoveryUnavailable }
        let evaluated = try Self.evaluate(blinded, keys: keys, account: session.account, version: keys.current)
        var reply = Cloak_V1_RecoveryEvaluation()
        reply.evaluatedElement = Data(evaluated.bytes)
        reply.keyVersion = keys.current
        reply.attemptsLeft = configuration.recoveryFailuresBeforeLockout
        return reply
    }

    /// An active device ends a lockout (its user saw the attempts): the count starts again.
    func resetRecoveryLockout(_ connection: ConnectionID, session: Session, requestID: UInt64, nowMs: UInt64)
        throws(ProtocolError)
    {
        try state.withLock { (s) throws(ProtocolError) in
            guard let cached = s.accounts[session.account], !cached.needsReload else { throw .internalError }
            guard var record = cached.recovery, record.failures > 0 else {
                output.send(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: requestID), to: connection)
                return
            }
            record.failures = 0
            record.lastAttemptMs = nowMs
            s.accounts[session.account]?.recovery = record
            stageCounters(record, completion: .done(connection, requestID: requestID), in: &s)
            stageNotice(session.account, status: status(of: record, succeeded: false), in: &s)
        }
    }

    /// The recovery key authenticated: the passphrase (or the words) was right, so the guesses
    /// counted so far were one person's; the count starts again and the devices are told. The
    /// guesses before it are kept as the account's durable notice (replacing an older one), told
    /// to every device at its next authentication: one offline now still learns of them.
    func recoverySucceeded(_ account: AccountID, nowMs: UInt64, in s: inout RegistryState) {
        guard var record = s.accounts[account]?.recovery else { return }
        let guesses = record.failures
        if guesses > 0 {
            record.noticeFailures = guesses
            record.noticeAtMs = nowMs
            record.failures = 0
            record.lastAttemptMs = nowMs
            s.accounts[account]?.recovery = record
            stageCounters(record, completion: nil, in: &s)
        }
        var notice = Cloak_V1_AccountNotice()
        notice.recovery = Self.successStatus(guesses: guesses, atMs: nowMs)
        sendNotice(notice, to: account, except: nil, in: &s)
    }

    /// What a device session is told after authenticating: the durable notice of guesses before
    /// the last successful recovery, if any, then the guesses counted since (oldest first). The
    /// device raises each once (it remembers what it saw) — that is its acknowledgement.
    func pendingRecoveryNotices(_ account: AccountID, in s: borrowing RegistryState) -> [Cloak_V1_AccountNotice] {
        guard let record = s.accounts[account]?.recovery else { return [] }
        var notices: [Cloak_V1_AccountNotice] = []
        if record.noticeFailures > 0 {
            var notice = Cloak_V1_AccountNotice()
            notice.recovery = Self.successStatus(guesses: record.noticeFailures, atMs: record.noticeAtMs)
            notices.append(notice)
        }
        if record.failures > 0 {
            var notice = Cloak_V1_AccountNotice()
            notice.recovery = status(of: record, succeeded: false)
            notices.append(notice)
        }
        return notices
    }

    /// A successful recovery at `atMs` after `guesses` counted guesses.
    private static func successStatus(guesses: UInt32, atMs: UInt64) -> Cloak_V1_RecoveryStatus {
        var status = Cloak_V1_RecoveryStatus()
        status.atMs = atMs
        status.consecutiveFailures = guesses
        status.succeeded = true
        return status
    }

    /// When the account's recovery unlocks, if it is locked: after
    /// ``ServerConfiguration/recoveryFailuresBeforeLockout`` counted guesses, the lockout starts
    /// at ``ServerConfiguration/recoveryLockoutMs`` after the last one and doubles with every
    /// further guess, up to ``ServerConfiguration/recoveryLockoutMaxMs``.
    func lockedUntil(_ record: RecoveryRecord) -> UInt64? {
        let threshold = configuration.recoveryFailuresBeforeLockout
        guard record.failures >= threshold else { return nil }
        let doublings = min(record.failures - threshold, 40)
        let delay = min(configuration.recoveryLockoutMs.multipliedReportingOverflow(by: 1 << doublings).partialValue,
                        configuration.recoveryLockoutMaxMs)
        return record.lastAttemptMs + delay
    }

    /// The enrollment parameters of a passphrase blob (kind 0x03), if it is one.
    static func passphraseEnrollment(_ record: RecoveryRecord) -> RecoveryEnrollment? {
        guard let blob = try? FrameCodec.parse(Cloak_V1_RecoveryBlob.self, from: record.bytes, what: "recovery blob") else {
            return nil
        }
        return try? RecoveryEnrollment(decoding: Array(blob.kdfParameters))
    }

    private static func evaluate(_ blinded: OPRF.Element, keys: RecoveryKeySet, account: AccountID, version: UInt32)
        throws(ProtocolError) -> OPRF.Element
    {
        do { return try keys.key(for: account, version: version).blindEvaluate(blinded) } catch {
            throw .invalidField("blinded_element cannot be evaluated")
        }
    }

    private func status(of record: RecoveryRecord, succeeded: Bool) -> Cloak_V1_RecoveryStatus {
        var status = Cloak_V1_RecoveryStatus()
        status.atMs = record.lastAttemptMs
        status.consecutiveFailures = record.failures
        status.lockedUntilMs = lockedUntil(record) ?? 0
        status.succeeded = succeeded
        return status
    }

    private func stageCounters(_ record: RecoveryRecord, completion: Completion?, in s: inout RegistryState) {
        stage(account: record.account, rows: 1, completion: completion, in: &s) { pending in
            pending.batch.recoveryCounters.append(
                .init(
                    account: record.account, failures: record.failures, lastAttemptMs: record.lastAttemptMs,
                    noticeFailures: record.noticeFailures, noticeAtMs: record.noticeAtMs))
        }
    }

    /// Tells the account's devices once the counted guess is durable.
    private func stageNotice(_ account: AccountID, status: Cloak_V1_RecoveryStatus, in s: inout RegistryState) {
        var notice = Cloak_V1_AccountNotice()
        notice.recovery = status
        s.pending.completions.append(Waiting(account: account, completion: .notice(account, notice, except: nil)))
    }

    /// Sends `notice` to every live device session of `account` (not recovery-key sessions, not
    /// `except`). Only a reason for the devices to look: they verify what they fetch.
    func sendNotice(_ notice: Cloak_V1_AccountNotice, to account: AccountID, except: ConnectionID?, in s: inout RegistryState) {
        guard let connections = s.accounts[account]?.connections else { return }
        let frame = FrameCodec.encode(.accountNotice(notice), requestID: 0)
        for connection in connections.sorted() where connection != except {
            guard let session = s.connections[connection]?.session, !session.isRecoveryKey else { continue }
            output.send(frame, to: connection)
        }
    }
}
