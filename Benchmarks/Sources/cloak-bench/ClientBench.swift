import ArgumentParser
import CSodium
@_spi(Simulation) import CloakClient
import CloakCRDT
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import Foundation

/// `scripts/bench client`: sealing (encrypt + sign + store) and opening (verify + decrypt +
/// apply + store) change sets through the real client core with in-memory stores, next to raw
/// libsodium Ed25519 sign/verify in the same run; and a new device's bootstrap from a snapshot
/// of a 10,000-message conversation plus 1,000 later change sets.
struct ClientSuite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client", abstract: "Client seal/open throughput vs raw Ed25519, and new-device bootstrap.")

    @OptionGroup var options: SuiteOptions

    func run() async throws {
        _ = sodium_init()
        var report = BenchReport(suite: "client")
        // Raw and client measurements alternate and each keeps its best of 3, so a burst of
        // load from other processes on this shared machine does not land on one side only.
        var (sign, verify) = (0.0, 0.0)
        var oneOp = (seal: 0.0, open: 0.0)
        for _ in 0..<3 {
            let raw = rawEd25519()
            (sign, verify) = (max(sign, raw.0), max(verify, raw.1))
            let run = try await sealAndOpen(changeSets: 2000, editsPerChangeSet: 1)
            oneOp = (max(oneOp.seal, run.seal), max(oneOp.open, run.open))
        }
        report.add("raw.ed25519.sign", sign, unit: "ops/s", note: "libsodium, 400-byte message")
        report.add("raw.ed25519.verify", verify, unit: "ops/s", note: "libsodium, one core")
        report.add("seal.1op", oneOp.seal, unit: "change sets/s")
        report.add("open.1op", oneOp.open, unit: "change sets/s", note: "signatures verified on helper threads")
        report.add("open.1op.vs_raw_verify", oneOp.open / verify * 100, unit: "%", note: "target >= 80%")
        let hundred = try await sealAndOpen(changeSets: 300, editsPerChangeSet: 100)
        report.add("seal.100op", hundred.seal, unit: "change sets/s")
        report.add("open.100op", hundred.open, unit: "change sets/s")
        let bootstrap = try await bootstrapTime(messages: 10_000, later: 1_000)
        report.add("bootstrap.snapshot_bytes", Double(bootstrap.snapshotBytes), unit: "bytes")
        report.add("bootstrap.10k_messages_plus_1k_change_sets", bootstrap.millis, unit: "ms", note: "target < 300 ms")
        report.print(json: options.json)
    }

    func rawEd25519() -> (Double, Double) {
        let key = Ed25519PrivateKey()
        let message = SystemRandom().bytes(400)
        let signature = key.signature(for: message)
        let pk = key.publicKey.bytes
        var out = [UInt8](repeating: 0, count: 64)
        let n = 5000
        let seed = key.seed.copyBytes()
        var sk = [UInt8](repeating: 0, count: 64)
        var pkOut = [UInt8](repeating: 0, count: 32)
        crypto_sign_seed_keypair(&pkOut, &sk, seed)
        let sign = Measure.best(of: 3) { for _ in 0..<n { crypto_sign_detached(&out, nil, message, 400, sk) } }
        var ok = 0
        let verify = Measure.best(of: 3) {
            for _ in 0..<n where crypto_sign_verify_detached(signature, message, 400, pk) == 0 { ok += 1 }
        }
        return (Double(n) / sign, Double(n) / verify)
    }

    /// Two linked devices with in-memory stores (no fsync: this measures the pipeline, not the disk).
    func pair() async throws -> (CloakClient, CloakClient) {
        let url = URL(string: "ws://127.0.0.1:1/v1/sync")!
        let a = try CloakClient.openInMemory(server: url, transport: Unreachable())
        let b = try CloakClient.openInMemory(server: url, transport: Unreachable())
        try await a.createAccountLocally()
        let keys = await b.publicKeys()
        let (log, envelopes) = try await a.addDeviceLocally(signing: keys.signing, agreement: keys.agreement)
        try await b.joinLocally(log: log, envelopes: envelopes)
        return (a, b)
    }

    func sealAndOpen(changeSets: Int, editsPerChangeSet: Int) async throws -> (seal: Double, open: Double) {
        let (a, b) = try await pair()
        let chat = try await a.createConversation(title: "bench")
        let setup = try await a.takeOutbox()
        try await b.deliver(setup.enumerated().map { (UInt64($0.offset + 1), $0.element) })
        var reply: MessageID?
        let sealSeconds = try await Measure.asyncSeconds {
            for index in 0..<changeSets {
                if editsPerChangeSet == 1 {
                    try await a.appendMessage(to: chat, role: .user, text: "message number \(index) with some words")
                } else {
                    let message = try await a.beginMessage(in: chat, parent: reply)
                    for token in 0..<(editsPerChangeSet - 1) {
                        try await a.streamText("tok\(token) ", into: message, in: chat)
                    }
                    try await a.finishStreaming(in: chat)
                    reply = message
                }
            }
        }
        let wires = try await a.takeOutbox()
        let items = wires.enumerated().map { (cursor: UInt64(100 + $0.offset), wire: $0.element) }
        let openSeconds = try await Measure.asyncSeconds {
            for chunk in stride(from: 0, to: items.count, by: 50) {
                try await b.deliver(Array(items[chunk..<min(chunk + 50, items.count)]))
            }
        }
        guard await a.stateHash(of: chat) == (await b.stateHash(of: chat)) else { throw ClientBenchError.diverged }
        return (Double(changeSets) / sealSeconds, Double(wires.count) / openSeconds)
    }

    func bootstrapTime(messages: Int, later: Int) async throws -> (millis: Double, snapshotBytes: Int) {
        let (a, _) = try await pair()
        let chat = try await a.createConversation(title: "long")
        for index in 0..<messages {
            try await a.appendMessage(to: chat, role: index % 2 == 0 ? .user : .assistant,
                                      text: "message \(index): " + String(repeating: "lorem ipsum ", count: 8))
        }
        let early = try await a.takeOutbox()
        guard let snapshot = try await a.makeSnapshot(of: chat) else { throw ClientBenchError.noSnapshot }
        for index in 0..<later { try await a.appendMessage(to: chat, role: .user, text: "later \(index)") }
        let recent = try await a.takeOutbox()
        let items = recent.enumerated().map { (cursor: UInt64(early.count + 1 + $0.offset), wire: $0.element) }
        let library = early.prefix(1).map { (cursor: UInt64(1), wire: $0) }
        // A new device: bootstrap from the snapshot, then the later change sets.
        let url = URL(string: "ws://127.0.0.1:1/v1/sync")!
        let fresh = try CloakClient.openInMemory(server: url, transport: Unreachable())
        let keys = await fresh.publicKeys()
        let (log, envelopes) = try await a.addDeviceLocally(signing: keys.signing, agreement: keys.agreement)
        try await fresh.joinLocally(log: log, envelopes: envelopes)
        let seconds = try await Measure.asyncSeconds {
            try await fresh.deliver(library)
            try await fresh.deliverSnapshots([snapshot])
            for chunk in stride(from: 0, to: items.count, by: 200) {
                try await fresh.deliver(Array(items[chunk..<min(chunk + 200, items.count)]))
            }
        }
        guard await fresh.stateHash(of: chat) == (await a.stateHash(of: chat)) else { throw ClientBenchError.diverged }
        return (seconds * 1000, snapshot.ciphertext.count)
    }
}

enum ClientBenchError: Error {
    case diverged
    case noSnapshot
}

/// The benchmarks never connect.
struct Unreachable: SyncTransport {
    func connect(to url: URL) async throws -> any SyncConnection { throw ClientError.notConnected }
}

extension Measure {
    static func asyncSeconds(_ body: () async throws -> Void) async rethrows -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try await body()
        let elapsed = clock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
