@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
@_spi(Randomness) import CloakTesting

/// Builds the vector account's device log and records each entry as a vector case.
struct LogBuilder {
    private(set) var log: DeviceLog
    private(set) var cases: [LogCase]

    init(genesis device: VectorDevice, accountNonce: [UInt8]) throws {
        let entry = DeviceLogEntry.genesis(
            device: device.signing, agreementKey: device.agreement.publicKey, accountNonce: accountNonce,
            createdAtMs: ProtocolVectors.baseTimeMs)
        log = try DeviceLog(genesis: entry)
        cases = [
            LogCase(name: "genesis by \(device.name)", entry: entry, signerSeed: device.seed, account: log.account)
        ]
    }

    private var nextTime: UInt64 { ProtocolVectors.baseTimeMs + UInt64(log.entries.count) * 60_000 }

    mutating func add(_ device: VectorDevice, signer: VectorDevice) throws {
        let entry = DeviceLogEntry.add(
            signingKey: device.signing.publicKey, agreementKey: device.agreement.publicKey, after: log,
            signer: signer.signing, createdAtMs: nextTime)
        try append(entry, name: "\(signer.name) adds \(device.name)", signer: signer)
    }

    mutating func setRecovery(_ keys: RecoveryKeys, signer: VectorDevice) throws {
        let entry = DeviceLogEntry.add(
            .setRecovery, signingKey: keys.signing.publicKey, agreementKey: keys.agreement.publicKey, after: log,
            signer: signer.signing, createdAtMs: nextTime)
        try append(entry, name: "\(signer.name) sets the recovery key", signer: signer)
    }

    mutating func remove(_ device: VectorDevice, cutoffs: [RemovalCutoff], signer: VectorDevice) throws {
        let entry = DeviceLogEntry.remove(
            device.id, cutoffs: cutoffs, after: log, signer: signer.signing, createdAtMs: nextTime)
        try append(entry, name: "\(signer.name) removes \(device.name)", signer: signer)
    }

    /// PROTOCOL.md §29: a grant of `scope` to an assistant, expiring a day after it is made.
    mutating func grant(_ assistant: VectorDevice, scope: [ConversationID], signer: VectorDevice) throws {
        let entry = DeviceLogEntry.grantAssistant(
            signingKey: assistant.signing.publicKey, agreementKey: assistant.agreement.publicKey, scope: scope,
            expiresAtMs: nextTime + 86_400_000, after: log, signer: signer.signing, createdAtMs: nextTime)
        try append(entry, name: "\(signer.name) grants assistant \(assistant.name)", signer: signer)
    }

    /// A restriction (`removing` set) or the revocation of an assistant.
    mutating func end(_ assistant: VectorDevice, removing: [ConversationID]?, signer: VectorDevice) throws {
        let entry: DeviceLogEntry
        if let removing {
            entry = DeviceLogEntry.restrictAssistant(
                assistant.id, removing: removing, cutoffs: [], after: log, signer: signer.signing, createdAtMs: nextTime)
            try append(entry, name: "\(signer.name) restricts assistant \(assistant.name)", signer: signer)
        } else {
            entry = DeviceLogEntry.revokeAssistant(
                assistant.id, reason: .revoked, cutoffs: [], after: log, signer: signer.signing, createdAtMs: nextTime)
            try append(entry, name: "\(signer.name) revokes assistant \(assistant.name)", signer: signer)
        }
    }

    private mutating func append(_ entry: DeviceLogEntry, name: String, signer: VectorDevice) throws {
        try log.append(entry)
        cases.append(LogCase(name: name, entry: entry, signerSeed: signer.seed, account: log.account))
    }
}

/// One `device_log.json` case.
struct LogCase {
    let name: String
    let entry: DeviceLogEntry
    let signerSeed: [UInt8]
    let account: AccountID

    static func kindName(_ kind: DeviceLogEntryKind) -> String {
        switch kind {
        case .genesis: "genesis"
        case .addDevice: "add_device"
        case .removeDevice: "remove_device"
        case .setRecovery: "set_recovery"
        case .grantAssistant: "grant_assistant"
        case .revokeAssistant: "revoke_assistant"
        case .restrictAssistant: "restrict_assistant"
        }
    }

    var json: VectorJSON {
        let e = entry
        var members: [(String, VectorJSON)] = [
            ("name", .string(name)), ("kind", .string(Self.kindName(e.kind))),
            ("kind_value", .int(UInt64(e.kind.rawValue))),
            ("version", .int(UInt64(e.version))), ("index", .int(e.index)), ("prev_hash_hex", .hex(e.prevHash.bytes)),
            ("signer_hex", .hex(e.signer.bytes)), ("signer_seed_hex", .hex(signerSeed)), ("epoch", .int(e.epoch)),
            ("created_at_ms", .int(e.createdAtMs)),
        ]
        if let key = e.subjectSigningKey, let agreement = e.subjectAgreementKey, let subject = e.subject {
            members += [
                ("device_signing_key_hex", .hex(key.bytes)), ("device_agreement_key_hex", .hex(agreement.bytes)),
                ("subject_device_id_hex", .hex(subject.bytes)),
            ]
        }
        if e.kind == .genesis { members.append(("account_nonce_hex", .hex(e.accountNonce))) }
        if let removed = e.removedDevice {
            members.append(("removed_device_hex", .hex(removed.bytes)))
            members.append(
                (
                    "cutoffs",
                    .array(
                        e.cutoffs.map { c in
                            .object([
                                ("conversation_id_hex", .hex(c.conversation.bytes)), ("seq", .int(c.seq)),
                                ("hash_hex", .hex(c.hash.bytes)),
                            ])
                        })
                ))
        }
        if e.kind == .grantAssistant { members.append(("expires_at_ms", .int(e.expiresAtMs))) }
        if e.kind == .revokeAssistant { members.append(("end_reason", .int(UInt64(e.endReason?.rawValue ?? 0)))) }
        if !e.scope.isEmpty { members.append(("scope_hex", .array(e.scope.map { .hex($0.bytes) }))) }
        members += [
            ("signed_message_hex", .hex(e.canonicalBytes)), ("signature_hex", .hex(e.signature)),
            ("wire_hex", .hex(e.wire)), ("entry_hash_hex", .hex(e.hash.bytes)), ("account_id_hex", .hex(account.bytes)),
        ]
        return .object(members)
    }
}

/// One `change_set.json` case.
struct ChangeSetCase {
    let name: String
    let author: VectorDevice
    let epochKey: [UInt8]
    let conversationKey: SymmetricKey
    let aeadKey: SymmetricKey
    let body: [UInt8]
    let padded: [UInt8]
    let changeSet: ChangeSet

    var head: ChainHead { ChainHead(device: author.id, seq: changeSet.header.seq, hash: changeSet.hash) }
    var cutoff: RemovalCutoff {
        RemovalCutoff(conversation: changeSet.header.conversation, seq: changeSet.header.seq, hash: changeSet.hash)
    }

    /// Seals a change set by `author` at the head of `world.0` under that head's epoch.
    static func make(
        _ name: String, world: (DeviceLog, [UInt64: [UInt8]]), author: VectorDevice, conversation: ConversationID,
        seq: UInt64, prev: ChangeSetHash, heads: [ChainHead], operations: [UInt8]
    ) throws -> ChangeSetCase {
        let (log, keys) = world
        let epoch = log.currentEpoch
        let epochKey = keys[epoch] ?? []
        let conversationKey = ConversationKeys.conversationKey(
            epochKey: try SymmetricKey(bytes: epochKey), conversation: conversation, epoch: epoch)
        var body = Cloak_V1_ChangeSetBody()
        body.heads = heads.map(\.message)
        body.operations = Data(operations)
        body.hlcMs = ProtocolVectors.baseTimeMs + 3_600_000 + seq * 1000
        let bodyBytes = FrameCodec.serialize(body)
        let header = ChangeSetHeader(
            account: log.account, conversation: conversation, author: author.id, seq: seq, prevHash: prev,
            epoch: epoch, deviceLogIndex: log.headIndex, deviceLogHead: log.head)
        let nonce = ProtocolVectors.material("change-set/\(name)/nonce", 24)
        let changeSet = try ChangeSetSealer.seal(
            body: bodyBytes, header: header, conversationKey: conversationKey, signer: author.signing,
            random: FixedBytesRandom(nonce))
        return ChangeSetCase(
            name: name, author: author, epochKey: epochKey, conversationKey: conversationKey,
            aeadKey: ConversationKeys.changeSetKey(
                conversationKey: conversationKey, conversation: conversation, epoch: epoch),
            body: bodyBytes, padded: try Padding.pad(bodyBytes), changeSet: changeSet)
    }

    var json: VectorJSON {
        let h = changeSet.header
        return .object([
            ("name", .string(name)), ("signing_seed_hex", .hex(author.seed)),
            ("author_public_key_hex", .hex(author.signing.publicKey.bytes)), ("epoch_key_hex", .hex(epochKey)),
            ("conversation_key_hex", .hex(conversationKey.secret.copyBytes())),
            ("aead_key_hex", .hex(aeadKey.secret.copyBytes())),
            ("version", .int(UInt64(h.version))), ("kind", .int(UInt64(ChangeSetHeader.kind))),
            ("account_id_hex", .hex(h.account.bytes)), ("conversation_id_hex", .hex(h.conversation.bytes)),
            ("author_hex", .hex(h.author.bytes)), ("seq", .int(h.seq)), ("prev_hash_hex", .hex(h.prevHash.bytes)),
            ("epoch", .int(h.epoch)), ("device_log_index", .int(h.deviceLogIndex)),
            ("device_log_head_hex", .hex(h.deviceLogHead.bytes)), ("nonce_hex", .hex(h.nonce)),
            ("body_hex", .hex(body)), ("plaintext_hex", .hex(padded)), ("ad_hex", .hex(h.associatedData)),
            ("ciphertext_hex", .hex(changeSet.ciphertext)), ("commitment_hex", .hex(changeSet.commitment)),
            ("signed_message_hex", .hex(changeSet.signedMessage)), ("signature_hex", .hex(changeSet.signature)),
            ("wire_hex", .hex(changeSet.wire)), ("hash_hex", .hex(changeSet.hash.bytes)),
        ])
    }
}

/// One `snapshot.json` case.
struct SnapshotCase {
    let name: String
    let author: VectorDevice
    let epochKey: [UInt8]
    let conversationKey: SymmetricKey
    let aeadKey: SymmetricKey
    let body: [UInt8]
    let padded: [UInt8]
    let snapshot: Snapshot

    static func make(
        _ name: String, world: (DeviceLog, [UInt64: [UInt8]]), author: VectorDevice, conversation: ConversationID,
        snapshotSeq: UInt64, prev: SnapshotHash, covers: [ChainHead], atIndex index: UInt64, state: [UInt8]
    ) throws -> SnapshotCase {
        let (log, keys) = world
        let epoch = log.epoch(atIndex: index) ?? 0
        let epochKey = keys[epoch] ?? []
        let conversationKey = ConversationKeys.conversationKey(
            epochKey: try SymmetricKey(bytes: epochKey), conversation: conversation, epoch: epoch)
        let header = Snapshot.Header(
            account: log.account, conversation: conversation, author: author.id, snapshotSeq: snapshotSeq,
            prevSnapshotHash: prev, epoch: epoch, deviceLogIndex: index,
            deviceLogHead: log.hash(atIndex: index) ?? .zero,
            covers: covers)
        var body = Cloak_V1_SnapshotBody()
        body.state = Data(state)
        let bodyBytes = FrameCodec.serialize(body)
        let snapshot = try SnapshotSealer.seal(
            body: bodyBytes, header: header, conversationKey: conversationKey, signer: author.signing,
            random: FixedBytesRandom(ProtocolVectors.material("snapshot/\(name)/nonce", 24)))
        return SnapshotCase(
            name: name, author: author, epochKey: epochKey, conversationKey: conversationKey,
            aeadKey: ConversationKeys.snapshotKey(
                conversationKey: conversationKey, conversation: conversation, epoch: epoch),
            body: bodyBytes, padded: try Padding.pad(bodyBytes), snapshot: snapshot)
    }

    var json: VectorJSON {
        let h = snapshot.header
        return .object([
            ("name", .string(name)), ("signing_seed_hex", .hex(author.seed)), ("epoch_key_hex", .hex(epochKey)),
            ("conversation_key_hex", .hex(conversationKey.secret.copyBytes())),
            ("aead_key_hex", .hex(aeadKey.secret.copyBytes())),
            ("version", .int(UInt64(h.version))), ("kind", .int(UInt64(Snapshot.Header.kind))),
            ("account_id_hex", .hex(h.account.bytes)), ("conversation_id_hex", .hex(h.conversation.bytes)),
            ("author_hex", .hex(h.author.bytes)), ("snapshot_seq", .int(h.snapshotSeq)),
            ("prev_snapshot_hash_hex", .hex(h.prevSnapshotHash.bytes)), ("epoch", .int(h.epoch)),
            ("device_log_index", .int(h.deviceLogIndex)), ("device_log_head_hex", .hex(h.deviceLogHead.bytes)),
            (
                "covers",
                .array(
                    h.covers.map { c in
                        .object([
                            ("device_hex", .hex(c.device.bytes)), ("seq", .int(c.seq)),
                            ("hash_hex", .hex(c.hash.bytes)),
                        ])
                    })
            ),
            ("nonce_hex", .hex(snapshot.nonce)), ("body_hex", .hex(body)), ("plaintext_hex", .hex(padded)),
            ("ad_hex", .hex(h.associatedData)), ("ciphertext_hex", .hex(snapshot.ciphertext)),
            ("commitment_hex", .hex(snapshot.commitment)), ("signed_message_hex", .hex(snapshot.signedMessage)),
            ("signature_hex", .hex(snapshot.signature)), ("wire_hex", .hex(FrameCodec.serialize(snapshot.message))),
            ("hash_hex", .hex(snapshot.hash.bytes)),
        ])
    }
}
