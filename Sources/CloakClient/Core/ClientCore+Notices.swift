import CloakCrypto
import CloakProtocol

extension ClientCore {
    /// Every device a newly verified entry added is announced (``SecurityEvent/Kind/deviceAdded``),
    /// on every device but the new one: a device nobody here linked — a recovery by someone who
    /// guessed or stole the secret, a link the user did not mean — shows up at once, and the
    /// user can remove it (ADV-46, ADV-48).
    func announceAddedDevices(
        _ entries: [DeviceLogEntry], in log: DeviceLog, _ tx: any StoreTransaction, _ output: inout CoreOutput
    ) throws {
        for entry in entries where entry.kind == .addDevice {
            guard let subject = entry.subject, subject != me else { continue }
            let byRecovery = log.members[entry.signer]?.isRecoveryKey == true
            let detail =
                byRecovery ? SecurityEvent.recoveryJoinDetail : "a device was linked by device \(entry.signer.hex)"
            try raise(SecurityEvent(.deviceAdded, device: subject, seq: entry.index, detail: detail), tx, &output)
        }
    }

    /// The server's notice of recovery attempts (never trusted, only told): each newer one is
    /// reported once, as attempts and, while it lasts, as a lockout.
    func receiveRecoveryNotice(_ status: Cloak_V1_RecoveryStatus) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        if status.succeeded { return try receiveRecoverySuccess(status) }
        guard status.consecutiveFailures > 0 || status.lockedUntilMs > 0 else { return output }
        try store.write { tx in
            let seen = try tx.meta(.recoveryNoticeAt).flatMap(UInt64.init(littleEndianBytes:)) ?? 0
            guard status.atMs > seen else { return }
            try tx.setMeta(.recoveryNoticeAt, status.atMs.littleEndianBytes)
            try raise(SecurityEvent(
                .recoveryAttempt,
                detail: "someone asked the server to check \(status.consecutiveFailures) recovery-passphrase guesses "
                    + "for this account since the last successful recovery or reset"), tx, &output)
            if status.lockedUntilMs > now() {
                try raise(SecurityEvent(
                    .recoveryLocked,
                    detail: "passphrase recovery is locked until \(status.lockedUntilMs) ms after 1970 (UTC); "
                        + "if nobody here tried, keep it so; a device can end the lockout"), tx, &output)
            }
        }
        return output
    }

    /// A recovery that succeeded after counted guesses: the server keeps this notice and tells
    /// every device at its next authentication (PROTOCOL.md §22), so a device that was offline
    /// during the guesses still reports it, once (remembering it is this device's acknowledgement).
    private func receiveRecoverySuccess(_ status: Cloak_V1_RecoveryStatus) throws(ClientError) -> CoreOutput {
        var output = CoreOutput()
        guard status.consecutiveFailures > 0 else { return output }
        try store.write { tx in
            let seen = try tx.meta(.recoverySuccessNoticeAt).flatMap(UInt64.init(littleEndianBytes:)) ?? 0
            guard status.atMs > seen else { return }
            try tx.setMeta(.recoverySuccessNoticeAt, status.atMs.littleEndianBytes)
            try raise(SecurityEvent(
                .recoveryAttempt,
                detail: "a recovery of this account succeeded at \(status.atMs) ms after 1970 (UTC) after "
                    + "\(status.consecutiveFailures) counted recovery-passphrase evaluations (a recovery by passphrase "
                    + "counts its own); if nobody here recovered it, remove the device it added"), tx, &output)
        }
        return output
    }
}
