public import CloakCrypto

// The entries a device signs, one constructor per kind (the chain rules are DeviceLog's).
extension DeviceLogEntry {
    /// A self-signed genesis entry for a new account.
    public static func genesis(
        device: Ed25519PrivateKey, agreementKey: X25519PublicKey, accountNonce: [UInt8], createdAtMs: UInt64
    ) -> DeviceLogEntry {
        let f = Fields(
            kind: .genesis, index: 0, prevHash: .zero, signer: DeviceID(signingKey: device.publicKey), epoch: 1,
            createdAtMs: createdAtMs, signingKey: device.publicKey, agreementKey: agreementKey,
            accountNonce: accountNonce)
        return signed(f, by: device)
    }

    /// An entry adding a device (or, with `kind: .setRecovery`, registering a recovery key)
    /// after `log`'s head, signed by `signer`.
    public static func add(
        _ kind: DeviceLogEntryKind = .addDevice, signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey,
        after log: DeviceLog, signer: Ed25519PrivateKey, createdAtMs: UInt64
    ) -> DeviceLogEntry {
        // A set_recovery that replaces a recovery key starts the next epoch: the replaced
        // secret must open nothing new.
        let replacing = kind == .setRecovery && log.recoveryKey != nil
        let f = Fields(
            kind: kind, index: UInt64(log.entries.count), prevHash: log.head,
            signer: DeviceID(signingKey: signer.publicKey), epoch: log.currentEpoch + (replacing ? 1 : 0),
            createdAtMs: createdAtMs, signingKey: signingKey, agreementKey: agreementKey)
        return signed(f, by: signer)
    }

    /// An entry granting the assistant with these keys access to `scope` until `expiresAtMs`
    /// (or, for an active assistant, widening its scope to `scope` and setting its expiry).
    public static func grantAssistant(
        signingKey: Ed25519PublicKey, agreementKey: X25519PublicKey, scope: [ConversationID], expiresAtMs: UInt64,
        after log: DeviceLog, signer: Ed25519PrivateKey, createdAtMs: UInt64
    ) -> DeviceLogEntry {
        let f = Fields(
            kind: .grantAssistant, index: UInt64(log.entries.count), prevHash: log.head,
            signer: DeviceID(signingKey: signer.publicKey), epoch: log.currentEpoch, createdAtMs: createdAtMs,
            signingKey: signingKey, agreementKey: agreementKey, scope: Array(Set(scope)).sorted(), expiresAtMs: expiresAtMs)
        return signed(f, by: signer)
    }

    /// An entry ending `assistant`'s grant, starting epoch `log.currentEpoch + 1`.
    public static func revokeAssistant(
        _ assistant: DeviceID, reason: AssistantEndReason, cutoffs: [RemovalCutoff], after log: DeviceLog,
        signer: Ed25519PrivateKey, createdAtMs: UInt64
    ) -> DeviceLogEntry {
        let f = Fields(
            kind: .revokeAssistant, index: UInt64(log.entries.count), prevHash: log.head,
            signer: DeviceID(signingKey: signer.publicKey), epoch: log.currentEpoch + 1, createdAtMs: createdAtMs,
            removedDevice: assistant, cutoffs: cutoffs.sorted { $0.conversation < $1.conversation }, endReason: reason)
        return signed(f, by: signer)
    }

    /// An entry removing `conversations` from `assistant`'s scope, starting epoch
    /// `log.currentEpoch + 1`.
    public static func restrictAssistant(
        _ assistant: DeviceID, removing conversations: [ConversationID], cutoffs: [RemovalCutoff], after log: DeviceLog,
        signer: Ed25519PrivateKey, createdAtMs: UInt64
    ) -> DeviceLogEntry {
        let f = Fields(
            kind: .restrictAssistant, index: UInt64(log.entries.count), prevHash: log.head,
            signer: DeviceID(signingKey: signer.publicKey), epoch: log.currentEpoch + 1, createdAtMs: createdAtMs,
            removedDevice: assistant, cutoffs: cutoffs.sorted { $0.conversation < $1.conversation },
            scope: Array(Set(conversations)).sorted())
        return signed(f, by: signer)
    }

    /// An entry removing `device`, starting epoch `log.currentEpoch + 1`.
    public static func remove(
        _ device: DeviceID, cutoffs: [RemovalCutoff], after log: DeviceLog, signer: Ed25519PrivateKey,
        createdAtMs: UInt64
    ) -> DeviceLogEntry {
        let f = Fields(
            kind: .removeDevice, index: UInt64(log.entries.count), prevHash: log.head,
            signer: DeviceID(signingKey: signer.publicKey), epoch: log.currentEpoch + 1, createdAtMs: createdAtMs,
            removedDevice: device, cutoffs: cutoffs.sorted { $0.conversation < $1.conversation })
        return signed(f, by: signer)
    }
}
