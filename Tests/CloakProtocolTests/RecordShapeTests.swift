@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakTesting
import CloakVectors
import Foundation
import Testing

/// Shape checks of the stored records (lengths, versions, orders, limits) and a seeded mutation
/// fuzzer over every decoder, so the libFuzzer harness's properties also run in CI (ADV-17).
@Suite("Record shapes")
struct RecordShapeTests {
    static func changeSet() throws -> ChangeSet {
        let f = try AccountFixture()
        return try f.seal(by: f.a, seq: 2, prev: ChangeSetHash(hashing: [1]))
    }

    static func edited(_ cs: ChangeSet, _ edit: (inout Cloak_V1_ChangeSet) -> Void) throws -> [UInt8] {
        var m = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: cs.wire, what: "change set")
        edit(&m)
        return FrameCodec.serialize(m)
    }

    @Test("change set: each fixed-length field at another length, seq 0, prev_hash rules, version, ciphertext size")
    func changeSetShape() throws {
        let cs = try Self.changeSet()
        let cases: [(String, (inout Cloak_V1_ChangeSet) -> Void, ProtocolError)] = [
            ("account", { $0.accountID = Data([1]) }, .invalidField("account_id must be 32 bytes, got 1")),
            ("conversation", { $0.conversationID = Data() }, .invalidField("conversation_id must be 16 bytes, got 0")),
            ("author", { $0.author = Data(repeating: 1, count: 17) }, .invalidField("author must be 16 bytes, got 17")),
            (
                "prev", { $0.prevHash = Data(repeating: 1, count: 31) },
                .invalidField("prev_hash must be 32 bytes, got 31")
            ),
            ("head", { $0.deviceLogHead = Data() }, .invalidField("device_log_head must be 32 bytes, got 0")),
            ("nonce", { $0.nonce = Data(repeating: 0, count: 12) }, .invalidField("nonce must be 24 bytes")),
            (
                "commitment", { $0.commitment = Data(repeating: 0, count: 16) },
                .invalidField("commitment must be 32 bytes")
            ),
            (
                "signature", { $0.signature = Data(repeating: 0, count: 65) },
                .invalidField("signature must be 64 bytes")
            ),
            ("seq", { $0.seq = 0 }, .invalidField("seq must start at 1")),
            ("seq1", { $0.seq = 1 }, .invalidField("prev_hash must be zero exactly for seq 1")),
            (
                "zero prev", { $0.prevHash = Data(repeating: 0, count: 32) },
                .invalidField("prev_hash must be zero exactly for seq 1")
            ),
            ("version", { $0.version = 2 }, .unsupportedVersion(2)),
            (
                "ciphertext", { $0.ciphertext = Data(repeating: 0, count: 271) },
                .invalidField("ciphertext shorter than the smallest padded body")
            ),
        ]
        for (name, edit, expected) in cases {
            #expect(throws: expected, "\(name)") { try ChangeSet(wire: Self.edited(cs, edit)) }
        }
        #expect(throws: ProtocolError.invalidField("change set is not valid protobuf (truncated)")) {
            try ChangeSet(wire: [0x0a, 0x05, 1])
        }
    }

    @Test("device-log entry: unknown kinds, fields of another kind, cut-off order and count")
    func entryShape() throws {
        var f = try AccountFixture()
        let add = f.log.entries[1].message
        for kind: Cloak_V1_DeviceLogEntryKind in [
            .unspecified, .UNRECOGNIZED(9), .UNRECOGNIZED(-1), .UNRECOGNIZED(257),
        ] {
            var m = add
            m.kind = kind
            #expect(throws: ProtocolError.invalidDeviceLog("unknown entry kind")) { try DeviceLogEntry(message: m) }
        }
        // Fields outside the kind's canonical bytes would be unsigned: refused.
        let unused = ProtocolError.invalidField("a field this entry kind does not use is set")
        var m = add
        m.accountNonce = Data(repeating: 1, count: 16)
        #expect(throws: unused) { try DeviceLogEntry(message: m) }
        m = add
        m.removedDevice = Data(f.c.id.bytes)
        #expect(throws: unused) { try DeviceLogEntry(message: m) }
        var genesis = f.log.entries[0].message
        genesis.cutoffs = [Cloak_V1_RemovalCutoff()]
        #expect(throws: unused) { try DeviceLogEntry(message: genesis) }
        genesis = f.log.entries[0].message
        genesis.accountNonce = Data(repeating: 1, count: 15)
        #expect(throws: ProtocolError.invalidField("account_nonce must be 16 bytes")) {
            try DeviceLogEntry(message: genesis)
        }

        let cutoffs = (1...3).map { i in
            RemovalCutoff(
                conversation: ConversationID(unchecked: [UInt8](repeating: UInt8(i), count: 16)), seq: 1,
                hash: ChangeSetHash(hashing: [UInt8(i)]))
        }
        let removal = f.removeEntry(f.c, by: f.a, cutoffs: cutoffs.reversed())
        #expect(removal.cutoffs == cutoffs)
        var r = removal.message
        #expect(throws: ProtocolError.invalidField("too many removal cut-offs")) {
            try DeviceLogEntry(message: r, maxCutoffs: 2)
        }
        r.cutoffs = [r.cutoffs[1], r.cutoffs[0], r.cutoffs[2]]
        #expect(throws: ProtocolError.invalidField("cut-offs must be sorted by conversation id without repeats")) {
            try DeviceLogEntry(message: r)
        }
        r.cutoffs = [r.cutoffs[1], r.cutoffs[1]]
        #expect(throws: ProtocolError.self) { try DeviceLogEntry(message: r) }
        r = removal.message
        r.deviceSigningKey = Data(f.a.signing.publicKey.bytes)
        #expect(throws: unused) { try DeviceLogEntry(message: r) }
        try f.log.append(try DeviceLogEntry(message: removal.message))
    }

    @Test("snapshot: covers order, snapshot_seq 0, byte lengths")
    func snapshotShape() throws {
        let f = try AccountFixture()
        let key = AccountFixture.conversationKey(AccountFixture.conversation, epoch: 1)
        let heads = [f.a, f.b].map { ChainHead(device: $0.id, seq: 1, hash: ChangeSetHash(hashing: $0.id.bytes)) }
        let header = Snapshot.Header(
            account: f.log.account, conversation: AccountFixture.conversation, author: f.a.id, snapshotSeq: 1,
            prevSnapshotHash: .zero, epoch: 1, deviceLogIndex: 2, deviceLogHead: f.log.head, covers: heads.reversed())
        let snapshot = try SnapshotSealer.seal(
            body: [1, 2, 3], header: header, conversationKey: key, signer: f.a.signing,
            random: DeterministicRandom(seed: 1))
        #expect(snapshot.header.covers == heads.sorted { $0.device < $1.device })
        #expect(try Snapshot(message: snapshot.message).hash == snapshot.hash)
        var m = snapshot.message
        m.covers = m.covers.reversed()
        #expect(throws: ProtocolError.invalidField("snapshot covers must be sorted by device without repeats")) {
            try Snapshot(message: m)
        }
        m = snapshot.message
        m.snapshotSeq = 0
        #expect(throws: ProtocolError.invalidField("snapshot_seq must start at 1")) { try Snapshot(message: m) }
        m = snapshot.message
        m.nonce = Data([1])
        #expect(throws: ProtocolError.self) { try Snapshot(message: m) }
        m = snapshot.message
        m.covers[0].hash = Data([1])
        #expect(throws: ProtocolError.invalidField("head hash must be 32 bytes, got 1")) { try Snapshot(message: m) }
    }

    @Test("ADV-17 seeded mutations of every sample frame never trap any decoder")
    func mutationFuzz() throws {
        var rng = SeededRandom(seed: 17)
        let seeds = try ProtocolVectors.sampleFrames().map { FrameCodec.encode($0.frame) }
        let log = try AccountFixture().log
        var decodedFrames = 0
        let iterations = 4000
        for _ in 0..<iterations {
            var bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...8, using: &rng) where !bytes.isEmpty {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                case 1: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                case 2: bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...16, using: &rng)))
                default: bytes.insert(contentsOf: rng.bytes(Int.random(in: 1...8, using: &rng)), at: i)
                }
            }
            guard let frame = try? FrameCodec.decode(bytes, maxFrameBytes: ProtocolLimits().maxFrameBytes) else {
                continue
            }
            decodedFrames += 1
            #expect(try FrameCodec.decode(FrameCodec.encode(frame), maxFrameBytes: .max) == frame)
            Self.decodeRecords(frame, log: log)
        }
        TestData.report("mutation fuzz: \(iterations) inputs, \(decodedFrames) still decoded as frames, no trap")
    }

    static func decodeRecords(_ frame: Cloak_V1_Frame, log: DeviceLog) {
        switch frame.body {
        case .push(let p):
            for wire in p.changeSets { if let cs = try? ChangeSet(wire: Array(wire)) { _ = log.admits(cs) } }
        case .deliver(let d):
            for item in d.items { if let cs = try? ChangeSet(wire: Array(item.changeSet)) { _ = log.admits(cs) } }
        case .deviceLogEntries(let list):
            _ = try? log.extended(with: list.entries.compactMap { try? DeviceLogEntry(wire: Array($0)) })
        case .register(let r): _ = try? DeviceLogEntry(wire: Array(r.genesis)).hash
        case .appendDeviceLog(let a): _ = try? DeviceLogEntry(wire: Array(a.entry)).hash
        case .keyEnvelopes(let k): for e in k.envelopes { _ = try? KeyEnvelope(message: e) }
        case .putKeyEnvelopes(let k): for e in k.envelopes { _ = try? KeyEnvelope(message: e) }
        case .snapshots(let s): for x in s.snapshots { _ = try? Snapshot(message: x) }
        case .putSnapshot(let p): _ = try? Snapshot(message: p.snapshot)
        case .mailboxPut(let m): _ = try? PairingPayload(text: String(decoding: m.payload, as: UTF8.self), nowMs: 0)
        case .recoveryBlob(let r): _ = try? PasswordKDFParameters(decoding: Array(r.kdfParameters))
        default: break
        }
    }
}
