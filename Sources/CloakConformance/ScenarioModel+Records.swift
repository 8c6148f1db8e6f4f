@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation
import SwiftProtobuf
@_spi(Randomness) import CloakTesting

/// The record directives of the README: device-log entries, change sets, snapshots, key
/// envelopes, built on the model and (unless `commit` is false) recorded in it.
extension ScenarioModel {
    static let createdAtMs: UInt64 = 1_767_225_600_000

    /// A device-log entry directive: `$genesis`, `$add_device`, `$set_recovery`, `$remove_device`
    /// or `$grant_assistant` (PROTOCOL.md §29: `assistant`, `scope` as conversation names,
    /// `expires_in_ms` after the entry's creation time, a century when absent).
    mutating func entry(_ kind: String, _ args: Arguments) throws -> [UInt8] {
        let accountName = try args.string("account")
        let entry: DeviceLogEntry
        if kind == "$genesis" {
            let device = try keys(try args.string("device"))
            entry = DeviceLogEntry.genesis(
                device: device.signing, agreementKey: device.agreement.publicKey,
                accountNonce: Array(derive("account/\(accountName)/nonce").prefix(16)), createdAtMs: Self.createdAtMs)
        } else {
            var log = try account(accountName).log
            if let after = try args.optionalInteger("after") {
                log = try DeviceLog(verifying: Array(log.entries.prefix(Int(after) + 1)))
            }
            let signer = try keys(try args.string("signer")).signing
            switch kind {
            case "$add_device", "$set_recovery":
                let subject = try keys(try args.string(kind == "$add_device" ? "device" : "recovery"))
                entry = DeviceLogEntry.add(
                    kind == "$add_device" ? .addDevice : .setRecovery, signingKey: subject.signing.publicKey,
                    agreementKey: subject.agreement.publicKey, after: log, signer: signer, createdAtMs: Self.createdAtMs
                )
            case "$grant_assistant":
                let assistant = try keys(try args.string("assistant"))
                let scope = try args.list("scope").map { item throws in
                    guard case .string(let name)? = item.values[""] else {
                        throw ConformanceFailure("scope must list conversation names")
                    }
                    return conversation(name)
                }
                let lifetime = try args.optionalInteger("expires_in_ms").map(UInt64.init) ?? 100 * 365 * 86_400_000
                entry = DeviceLogEntry.grantAssistant(
                    signingKey: assistant.signing.publicKey, agreementKey: assistant.agreement.publicKey, scope: scope,
                    expiresAtMs: Self.createdAtMs + lifetime, after: log, signer: signer, createdAtMs: Self.createdAtMs)
            default:
                let cutoffs = try args.list("cutoffs").map { item throws in
                    let head = try record(try item.string("change_set")).head
                    guard let head else { throw ConformanceFailure("a cut-off must name a change set") }
                    return RemovalCutoff(
                        conversation: conversation(try item.string("conversation")), seq: head.seq, hash: head.hash)
                }.sorted { $0.conversation < $1.conversation }
                entry = DeviceLogEntry.remove(
                    try keys(try args.string("device")).id, cutoffs: cutoffs, after: log, signer: signer,
                    createdAtMs: Self.createdAtMs)
            }
        }
        var wire = entry.wire
        if args.tampered {
            var message = entry.message
            message.signature = Self.flipped(message.signature)
            wire = FrameCodec.serialize(message)
        }
        if args.commits {
            if kind == "$genesis" {
                accounts[accountName] = Account(name: accountName, log: try DeviceLog(genesis: entry))
            } else {
                try accounts[accountName]?.log.append(entry)
            }
        }
        if let name = try args.optionalString("name") { records[name] = Record(bytes: wire, hash: entry.hash.bytes) }
        return wire
    }

    /// `$change_set`: a sealed change set on the model's chain.
    mutating func changeSet(_ args: Arguments) throws -> [UInt8] {
        let accountName = try args.string("account")
        let state = try account(accountName)
        let conversation = conversation(try args.string("conversation"))
        let authorName = try args.string("author")
        let author = try keys(authorName)
        let position = ChainPosition(conversation: conversation, author: author.id)
        let last = state.chains[position]
        let seq = try args.optionalInteger("seq").map(UInt64.init) ?? (last?.seq ?? 0) + 1
        let prev: ChangeSetHash
        switch try args.optionalString("prev") {
        case nil: prev = last?.hash ?? .zero
        case "zero"?: prev = .zero
        case let name?: prev = ChangeSetHash(unchecked: try record(name).hash)
        }
        let index = try args.optionalInteger("log_index").map(UInt64.init) ?? state.log.headIndex
        guard let head = state.log.hash(atIndex: index), let epoch = state.log.epoch(atIndex: index) else {
            throw ConformanceFailure("the model's log has no entry \(index)")
        }
        let label = try args.optionalString("name") ?? "\(args.string("conversation"))/\(authorName)/\(seq)"
        let header = ChangeSetHeader(
            account: state.log.account, conversation: conversation, author: author.id, seq: seq, prevHash: prev,
            epoch: epoch, deviceLogIndex: index, deviceLogHead: head)
        let key = ConversationKeys.conversationKey(
            epochKey: try epochKey(accountName, epoch), conversation: conversation, epoch: epoch)
        let body = derived("body/\(label)", count: Int(try args.optionalInteger("body_bytes") ?? 64))
        let changeSet = try ChangeSetSealer.seal(
            body: body, header: header, conversationKey: key, signer: author.signing,
            random: FixedBytesRandom(Array(derive("nonce/\(label)").prefix(24))), maxBytes: .max)
        var wire = changeSet.wire
        if args.tampered {
            var message = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: wire, what: "change set")
            message.signature = Self.flipped(message.signature)
            wire = FrameCodec.serialize(message)
        }
        if args.commits { accounts[accountName]?.chains[position] = (seq, changeSet.hash) }
        if let name = try args.optionalString("name") {
            records[name] = Record(
                bytes: wire, hash: changeSet.hash.bytes,
                head: ChainHead(device: author.id, seq: seq, hash: changeSet.hash))
        }
        return wire
    }

    /// `$snapshot`: a sealed snapshot covering named change sets, as its JSON form.
    mutating func snapshot(_ args: Arguments) throws -> JSONValue {
        let accountName = try args.string("account")
        let state = try account(accountName)
        let conversation = conversation(try args.string("conversation"))
        let author = try keys(try args.string("author"))
        let covers = try args.list("covers").map { item throws in
            guard case .string(let name)? = item.values[""], let head = try record(name).head else {
                throw ConformanceFailure("covers must name change sets")
            }
            return head
        }.sorted { $0.device < $1.device }
        let prev: SnapshotHash
        switch try args.optionalString("prev") {
        case nil, "zero"?: prev = .zero
        case let name?: prev = SnapshotHash(unchecked: try record(name).hash)
        }
        let label = try args.optionalString("name") ?? "snapshot"
        let epoch = state.log.currentEpoch
        let header = Snapshot.Header(
            account: state.log.account, conversation: conversation, author: author.id,
            snapshotSeq: UInt64(try args.optionalInteger("snapshot_seq") ?? 1), prevSnapshotHash: prev, epoch: epoch,
            deviceLogIndex: state.log.headIndex, deviceLogHead: state.log.head, covers: covers)
        let key = ConversationKeys.conversationKey(
            epochKey: try epochKey(accountName, epoch), conversation: conversation, epoch: epoch)
        let snapshot = try SnapshotSealer.seal(
            body: derived("snapshot/\(label)", count: Int(try args.optionalInteger("body_bytes") ?? 64)),
            header: header, conversationKey: key, signer: author.signing,
            random: FixedBytesRandom(Array(derive("nonce/\(label)").prefix(24))))
        var message = snapshot.message
        if args.tampered { message.signature = Self.flipped(message.signature) }
        if let name = try args.optionalString("name") {
            records[name] = Record(bytes: FrameCodec.serialize(message), hash: snapshot.hash.bytes)
        }
        return try Self.json(message)
    }

    /// `$key_envelope`: the model's epoch key sealed to a recipient, as its JSON form.
    mutating func keyEnvelope(_ args: Arguments) throws -> JSONValue {
        let accountName = try args.string("account")
        let state = try account(accountName)
        let epoch = UInt64(try args.integer("epoch"))
        let sender = try keys(try args.string("sender"))
        let recipientName = try args.string("recipient")
        let recipient = try keys(recipientName)
        let envelope = try KeyEnvelope.seal(
            try epochKey(accountName, epoch), epoch: epoch, account: state.log.account, recipient: recipient.id,
            recipientKey: recipient.agreement.publicKey, sender: sender.id, signer: sender.signing,
            random: FixedBytesRandom(derive("envelope/\(epoch)/\(recipientName)")))
        var message = envelope.message
        if args.tampered { message.signature = Self.flipped(message.signature) }
        return try Self.json(message)
    }

    /// `$authenticate`: an Authenticate message signed over `nonce`.
    mutating func authenticate(_ args: Arguments, nonce: [UInt8]) throws -> JSONValue {
        let account = try self.account(try args.string("account")).log.account
        let device = try keys(try args.string("device"))
        let version = UInt32(try args.optionalInteger("version") ?? 1)
        var message = Cloak_V1_Authenticate()
        message.version = version
        message.accountID = Data(account.bytes)
        message.deviceID = Data(device.id.bytes)
        let signed = AuthChallenge.message(serverNonce: nonce, account: account, device: device.id, version: version)
        message.signature = Data(device.signing.signature(for: signed))
        if args.tampered { message.signature = Self.flipped(message.signature) }
        return try Self.json(message)
    }

    /// `$fetch_device_log`: a FetchDeviceLog before authentication, proved by `device` over this
    /// connection's nonce (PROTOCOL.md §11, §14); `tamper` flips the signature.
    mutating func fetchDeviceLog(_ args: Arguments, nonce: [UInt8]) throws -> JSONValue {
        let account = try self.account(try args.string("account")).log.account
        let device = try keys(try args.string("device"))
        var message = Cloak_V1_FetchDeviceLog()
        message.accountID = Data(account.bytes)
        message.fromIndex = UInt64(try args.optionalInteger("from") ?? 0)
        message.deviceID = Data(device.id.bytes)
        message.signature = Data(
            LogAccessProof.sign(serverNonce: nonce, account: account, device: device.id, key: device.signing))
        if args.tampered { message.signature = Self.flipped(message.signature) }
        return try Self.json(message)
    }

    /// `$recovery_blob`.
    mutating func recoveryBlob(_ args: Arguments, parameters: [UInt8]) throws -> JSONValue {
        var blob = Cloak_V1_RecoveryBlob()
        blob.accountID = Data(try account(try args.string("account")).log.account.bytes)
        blob.recoveryKeyID = Data(try keys(try args.string("recovery")).id.bytes)
        blob.kdfParameters = Data(parameters)
        return try Self.json(blob)
    }

    static func flipped(_ signature: Data) -> Data {
        var bytes = Array(signature)
        if !bytes.isEmpty { bytes[0] ^= 1 }
        return Data(bytes)
    }

    static func flipped(_ signature: [UInt8]) -> [UInt8] { Array(flipped(Data(signature))) }

    /// A message's proto3 JSON form with the original field names.
    static func json(_ message: some SwiftProtobuf.Message) throws -> JSONValue {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return try JSONValue.parse(Data(try message.jsonString(options: options).utf8))
    }
}
