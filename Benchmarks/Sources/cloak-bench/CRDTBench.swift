import ArgumentParser
import CloakCRDT
import Foundation

/// `scripts/bench crdt [--json]`: the CloakCRDT workloads of the CRDT issue — a three-device
/// offline conversation merged into a fresh replica (at 1k, 5k and 20k messages per device,
/// to show the cost is linear), live and interleaved single updates, a streamed reply, and
/// the automerge-paper editing trace. Workloads are deterministic (index arithmetic, no
/// random generator), so every run measures the same operations.
struct CRDTSuite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crdt",
        abstract: "CloakCRDT: conversation merge, snapshots, live updates, streaming, editing trace."
    )

    @OptionGroup var options: SuiteOptions

    /// Internal: load the snapshot at this path in a fresh process and print the growth of its
    /// resident set, so the measurement is not blurred by memory the allocator kept earlier.
    @Option(help: .hidden) var memoryProbe: String?

    func run() throws {
        if let memoryProbe {
            let before = Measure.residentBytes()
            let doc = try ConversationDocument(
                snapshot: [UInt8](try Data(contentsOf: URL(fileURLWithPath: memoryProbe))))
            let after = Measure.residentBytes()
            Swift.print(after - before, doc.messageCount)
            return
        }
        var report = BenchReport(suite: "crdt")
        for messages in [1_000, 5_000] {
            var workload = try ConversationWorkload(messagesPerDevice: messages)
            try workload.measureMerge(into: &report, full: false)
        }
        var workload = try ConversationWorkload(messagesPerDevice: 20_000)
        try workload.measureMerge(into: &report, full: true)
        try workload.measureLiveUpdates(into: &report)
        try workload.measureInterleaved(into: &report)
        try StreamingWorkload.measure(into: &report)
        try TraceWorkload.measure(into: &report)
        report.print(json: options.json)
    }
}

private let epochMillis: UInt64 = 1_700_000_000_000

private func replicaID(_ n: UInt64) -> ReplicaID { ReplicaID(high: 0xBE7C_0000_0000_0000, low: n) }

/// About 200 characters of chat text, varied by `seed`.
private func messageText(_ seed: Int) -> String {
    let words = [
        "the", "model", "replied", "with", "a", "plan", "for", "our", "trip", "to", "Lisbon", "and", "Porto",
        "including", "trains", "museums", "food", "budget", "notes", "tomorrow",
    ]
    var text = ""
    var index = seed
    while text.utf8.count < 195 {
        text += words[index % words.count] + " "
        index = (index &* 31 &+ 7) & 0xFFFF_FFFF
    }
    return text
}

/// Three devices, each appending messages to its own branch while offline, with edits,
/// deletions and reactions.
struct ConversationWorkload {
    let messagesPerDevice: Int
    var devices: [(replica: Replica, doc: ConversationDocument, last: MessageID?, ops: [CRDTOperation])] = []
    var batches: [[UInt8]] = []
    var merged = ConversationDocument()
    var opCount: Int { devices.reduce(0) { $0 + $1.ops.count } }

    init(messagesPerDevice: Int) throws {
        self.messagesPerDevice = messagesPerDevice
        for n in 1...3 {
            devices.append((Replica(id: replicaID(UInt64(n))), ConversationDocument(), nil, []))
        }
    }

    private mutating func generate(device d: Int) throws {
        var (replica, doc, last, ops) = devices[d]
        var ids: [MessageID] = []
        ids.reserveCapacity(messagesPerDevice)
        ops.reserveCapacity(messagesPerDevice * 5 / 4)
        let now = epochMillis + UInt64(d)
        for i in 0..<messagesPerDevice {
            let role: MessageRole = i % 2 == 0 ? .user : .assistant
            let op = try doc.createMessage(
                parent: last, role: role, text: messageText(i &* 3 &+ d), replica: &replica,
                physicalMillis: now + UInt64(i))
            ops.append(op)
            ids.append(op.id)
            last = op.id
        }
        let later = now + UInt64(messagesPerDevice)
        for i in stride(from: 3, to: messagesPerDevice, by: 10) {
            ops.append(try doc.insertText(" (edited)", into: ids[i], at: 40, replica: &replica, physicalMillis: later))
        }
        for i in stride(from: 5, to: messagesPerDevice, by: 20) {
            ops.append(try doc.deleteMessage(ids[i], replica: &replica, physicalMillis: later))
        }
        for i in stride(from: 7, to: messagesPerDevice, by: 10) {
            let reaction = Reaction(emoji: i % 20 == 7 ? "👍" : "❤️", reactor: Array(repeating: UInt8(d), count: 16))
            ops.append(try doc.addReaction(reaction, to: ids[i], replica: &replica, physicalMillis: later))
        }
        devices[d] = (replica, doc, last, ops)
    }

    mutating func measureMerge(into report: inout BenchReport, full: Bool) throws {
        let prefix = "conversation.\(messagesPerDevice / 1000)k"
        let generate = try Measure.seconds {
            for d in devices.indices { try self.generate(device: d) }
        }
        let ops = opCount
        batches = devices.map { OperationBatch.encode($0.ops) }
        var decoded: [[CRDTOperation]] = []
        let decode = try Measure.seconds { decoded = try batches.map { try OperationBatch.decode($0) } }
        var fresh = ConversationDocument()
        let apply = Measure.seconds {
            for batch in decoded { _ = fresh.apply(batch, physicalMillis: epochMillis + 10_000_000) }
        }
        var keep: [ConversationDocument] = []  // freed after timing: teardown is not merge cost
        let merge = try Measure.best(of: full ? 3 : 5) {
            var doc = ConversationDocument()
            for bytes in batches {
                _ = doc.apply(try OperationBatch.decode(bytes), physicalMillis: epochMillis + 10_000_000)
            }
            keep.append(doc)
        }
        keep.removeAll()
        merged = fresh
        report.add("\(prefix).ops", Double(ops), unit: "ops", note: "3 devices, \(messagesPerDevice) messages each")
        report.add("\(prefix).merge.decode_apply", Double(ops) / merge, unit: "ops/s", note: "target >= 1,000,000")
        report.add("\(prefix).merge.time", merge * 1000, unit: "ms")
        guard full else { return }
        report.add("\(prefix).generate.time", generate * 1000, unit: "ms")
        report.add("\(prefix).encoded.size", Double(batches.reduce(0) { $0 + $1.count }), unit: "bytes")
        report.add("\(prefix).merge.decode_only", Double(ops) / decode, unit: "ops/s")
        report.add("\(prefix).merge.apply_only", Double(ops) / apply, unit: "ops/s")
        let converged = devices.allSatisfy { device in
            var copy = device.doc
            for (other, batch) in decoded.enumerated() where devices[other].replica.id != device.replica.id {
                _ = copy.apply(batch, physicalMillis: epochMillis + 10_000_000)
            }
            return copy.stateHash == merged.stateHash
        }
        report.add("\(prefix).merged.messages", Double(merged.messageCount), unit: "messages")
        report.add("\(prefix).converged", converged ? 1 : 0, unit: "bool", note: "every device's merge hash-equal")
        try measureSnapshot(prefix: prefix, into: &report)
    }

    private mutating func measureSnapshot(prefix: String, into report: inout BenchReport) throws {
        var snapshot: [UInt8] = []
        let encode = Measure.best(of: 3) { snapshot = merged.snapshot() }
        var loaded: ConversationDocument?
        let load = try Measure.best(of: 5) { loaded = try ConversationDocument(snapshot: snapshot) }
        report.add("\(prefix).snapshot.encode", encode * 1000, unit: "ms")
        report.add("\(prefix).snapshot.size", Double(snapshot.count), unit: "bytes")
        report.add("\(prefix).snapshot.load", load * 1000, unit: "ms", note: "target <= 20 ms")
        let equal = loaded?.stateHash == merged.stateHash
        report.add("\(prefix).snapshot.roundtrip_equal", equal ? 1 : 0, unit: "bool")
        loaded = nil
        report.add(
            "\(prefix).memory.rss", try Self.probeResidentBytes(snapshot) / 1_048_576, unit: "MB",
            note: "fresh process, RSS growth over loading the snapshot; target <= 100 MB")
        report.add(
            "\(prefix).memory.estimated", Double(merged.approximateMemoryBytes) / 1_048_576, unit: "MB",
            note: "merged by apply, from capacities")
        report.add("\(prefix).memory.text_runs", Double(merged.textRunCount), unit: "runs")
    }

    /// Runs this executable again with `--memory-probe` on a temporary copy of `snapshot`.
    private static func probeResidentBytes(_ snapshot: [UInt8]) throws -> Double {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-crdt-probe-\(getpid()).bin")
        try Data(snapshot).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = ["crdt", "--memory-probe", path.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let fields = String(decoding: output, as: UTF8.self).split(separator: " ")
        return fields.first.flatMap { Double($0) } ?? -1
    }

    /// One device keeps chatting; each update is decoded and applied on its own.
    mutating func measureLiveUpdates(into report: inout BenchReport) throws {
        var (replica, doc, last, _) = devices[1]
        var updates: [[UInt8]] = []
        let now = epochMillis + 5_000_000
        for i in 0..<1_000 {
            let op: CRDTOperation
            if i % 4 == 3, let target = last {
                op = try doc.appendText(" more", to: target, replica: &replica, physicalMillis: now + UInt64(i))
            } else {
                op = try doc.createMessage(
                    parent: last, role: i % 2 == 0 ? .user : .assistant, text: messageText(i), replica: &replica,
                    physicalMillis: now + UInt64(i))
                last = op.id
            }
            updates.append(OperationBatch.encode([op]))
        }
        var target = merged
        // The first updates make the copy's storage unique (copy-on-write); not merge cost.
        for bytes in updates.prefix(10) {
            _ = target.apply(try OperationBatch.decode(bytes), physicalMillis: now + 2_000)
        }
        let elapsed = try Measure.seconds {
            for bytes in updates.dropFirst(10) {
                _ = target.apply(try OperationBatch.decode(bytes), physicalMillis: now + 2_000)
            }
        }
        report.add(
            "conversation.live_update", elapsed / Double(updates.count - 10) * 1e6, unit: "µs/update",
            note: "decode + apply; target <= 5 µs")
    }

    /// Three devices edit one message and append messages concurrently; their 900 single-op
    /// updates arrive interleaved.
    mutating func measureInterleaved(into report: inout BenchReport) throws {
        guard let shared = merged.activePath().last else { return }
        var perDevice: [[[UInt8]]] = []
        let now = epochMillis + 6_000_000
        for d in 0..<3 {
            var replica = devices[d].replica
            var doc = merged
            var last = shared
            var updates: [[UInt8]] = []
            for i in 0..<300 {
                let op: CRDTOperation
                if i % 3 == 0 {
                    op = try doc.createMessage(
                        parent: last, role: .user, text: messageText(i + d), replica: &replica,
                        physicalMillis: now + UInt64(i))
                    last = op.id
                } else {
                    let length = doc.textLength(of: shared) ?? 0
                    op = try doc.insertText(
                        "xy", into: shared, at: min(length, 20 + i / 3), replica: &replica,
                        physicalMillis: now + UInt64(i))
                }
                updates.append(OperationBatch.encode([op]))
            }
            perDevice.append(updates)
        }
        var target = merged
        var warm = ConversationDocument()  // an unrelated update makes `target`'s storage unique
        var warmReplica = Replica(id: replicaID(8))
        let warmOp = try warm.createMessage(
            parent: nil, role: .system, text: "warm", replica: &warmReplica,
            physicalMillis: now)
        _ = target.apply([warmOp], physicalMillis: now)
        let elapsed = try Measure.seconds {
            for i in 0..<300 {
                for d in 0..<3 {
                    _ = target.apply(try OperationBatch.decode(perDevice[d][i]), physicalMillis: now + 2_000)
                }
            }
        }
        report.add(
            "conversation.interleaved_update", elapsed / 900 * 1e6, unit: "µs/update",
            note: "900 concurrent updates from 3 devices; target <= 10 µs")
    }
}

/// One assistant reply streamed as 10,000 chunks of 1–20 characters.
enum StreamingWorkload {
    static func measure(into report: inout BenchReport) throws {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz ,.")
        let chunks = (0..<10_000).map { i in
            String((0..<(1 + (i &* 7919) % 20)).map { alphabet[($0 + i) % alphabet.count] })
        }
        var replica = Replica(id: replicaID(9))
        var doc = ConversationDocument()
        var ops: [CRDTOperation] = []
        ops.reserveCapacity(10_001)
        let elapsed = try Measure.seconds {
            let reply = try doc.createMessage(
                parent: nil, role: .assistant, text: "", replica: &replica, physicalMillis: epochMillis)
            ops.append(reply)
            for (i, chunk) in chunks.enumerated() {
                ops.append(
                    try doc.appendText(
                        chunk, to: reply.id, replica: &replica, physicalMillis: epochMillis + UInt64(i / 50)))
            }
        }
        report.add(
            "streaming.append", Double(chunks.count) / elapsed, unit: "ops/s", note: "10,000 chunks of 1-20 chars")
        report.add("streaming.text_runs", Double(doc.textRunCount), unit: "runs")
        report.add("streaming.memory.estimated", Double(doc.approximateMemoryBytes) / 1024, unit: "KiB")
        var remote = ConversationDocument()
        let merge = Measure.seconds { _ = remote.apply(ops, physicalMillis: epochMillis + 1_000) }
        report.add("streaming.merge", Double(ops.count) / merge, unit: "ops/s", note: "uncoalesced ops")
        report.add("streaming.encoded.size", Double(OperationBatch.encode(ops).count), unit: "bytes", note: "coalesced")
    }
}

/// Martin Kleppmann's automerge-paper keystrokes (josephg/editing-traces) on one message.
enum TraceWorkload {
    struct Patch {
        let position: Int
        let deleted: Int
        let inserted: String
    }

    static func load() throws -> (patches: [Patch], end: String) {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TestData/traces/automerge-paper.json.gz").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let end = root["endContent"] as? String, let txns = root["txns"] as? [[String: Any]]
        else { throw ValidationError("cannot read \(path)") }
        var patches: [Patch] = []
        for txn in txns {
            for patch in txn["patches"] as? [[Any]] ?? [] where patch.count == 3 {
                patches.append(
                    Patch(
                        position: (patch[0] as? NSNumber)?.intValue ?? 0,
                        deleted: (patch[1] as? NSNumber)?.intValue ?? 0,
                        inserted: patch[2] as? String ?? ""))
            }
        }
        return (patches, end)
    }

    /// Replays every patch on a fresh document; `collect` also keeps the returned operations
    /// (what a client batching them into change sets does).
    static func replay(_ patches: [Patch], collect: Bool) throws -> (ConversationDocument, [CRDTOperation], MessageID) {
        var replica = Replica(id: replicaID(7))
        var doc = ConversationDocument()
        var ops: [CRDTOperation] = []
        let create = try doc.createMessage(
            parent: nil, role: .user, text: "", replica: &replica, physicalMillis: epochMillis)
        ops.append(create)
        for patch in patches {
            if patch.deleted > 0 {
                let op = try doc.deleteText(
                    in: create.id, range: patch.position..<(patch.position + patch.deleted), replica: &replica,
                    physicalMillis: epochMillis)
                if collect { ops.append(op) }
            }
            if !patch.inserted.isEmpty {
                let op = try doc.insertText(
                    patch.inserted, into: create.id, at: patch.position, replica: &replica, physicalMillis: epochMillis)
                if collect { ops.append(op) }
            }
        }
        return (doc, ops, create.id)
    }

    static func measure(into report: inout BenchReport) throws {
        let (patches, end) = try load()
        var finished: [(ConversationDocument, [CRDTOperation], MessageID)] = []  // freed after timing
        let local = try Measure.best(of: 5) { finished.append(try replay(patches, collect: false)) }
        let collected = try Measure.best(of: 3) { finished.append(try replay(patches, collect: true)) }
        let (doc, ops, message) = finished[finished.count - 1]
        finished.removeAll()
        let correct = doc.text(of: message) == end
        report.add(
            "trace.automerge_paper.local", local * 1000, unit: "ms", note: "\(patches.count) edits; target <= 60 ms")
        report.add(
            "trace.automerge_paper.local_collecting_ops", collected * 1000, unit: "ms",
            note: "also keeping the \(ops.count) returned operations")
        report.add("trace.automerge_paper.correct", correct ? 1 : 0, unit: "bool")
        var encoded: [UInt8] = []
        let encode = Measure.best(of: 3) { encoded = OperationBatch.encode(ops) }
        report.add("trace.automerge_paper.encode", encode * 1000, unit: "ms")
        report.add("trace.automerge_paper.encoded.size", Double(encoded.count), unit: "bytes")
        report.add(
            "trace.automerge_paper.encoded.ops", Double((try? OperationBatch.decode(encoded).count) ?? 0), unit: "ops",
            note: "after coalescing")
        var merged = ConversationDocument()
        var replaced: [ConversationDocument] = []
        let merge = try Measure.best(of: 3) {
            replaced.append(merged)
            merged = ConversationDocument()
            _ = merged.apply(try OperationBatch.decode(encoded), physicalMillis: epochMillis)
        }
        report.add("trace.automerge_paper.merge", merge * 1000, unit: "ms", note: "decode + apply; target <= 60 ms")
        var rawMerged = ConversationDocument()
        let rawMerge = Measure.best(of: 3) {
            replaced.append(rawMerged)
            rawMerged = ConversationDocument()
            _ = rawMerged.apply(ops, physicalMillis: epochMillis)
        }
        replaced.removeAll()
        report.add("trace.automerge_paper.merge_uncoalesced", rawMerge * 1000, unit: "ms", note: "\(ops.count) ops")
        let snapshot = doc.snapshot()
        var loaded: ConversationDocument?
        let load = try Measure.best(of: 5) { loaded = try ConversationDocument(snapshot: snapshot) }
        report.add("trace.automerge_paper.snapshot.size", Double(snapshot.count), unit: "bytes")
        report.add("trace.automerge_paper.snapshot.load", load * 1000, unit: "ms")
        let equal =
            loaded?.stateHash == doc.stateHash && merged.stateHash == doc.stateHash
            && rawMerged.stateHash == doc.stateHash
        report.add("trace.automerge_paper.states_equal", equal ? 1 : 0, unit: "bool")
        report.add("trace.automerge_paper.text_runs", Double(doc.textRunCount), unit: "runs")
    }
}
