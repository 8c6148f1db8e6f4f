import CloakCRDT
import CloakCrypto

/// A merge vector being written: named devices edit their own copies through the public API,
/// each edit's operations become one batch (one change set), and devices see each other's
/// batches only when the scenario delivers them, so later batches depend on earlier ones.
struct MergeScenario {
    struct Writer {
        var replica: Replica
        var conversation = ConversationDocument()
        var library = AccountLibraryDocument()
    }

    enum Document: String {
        case conversation
        case library
    }

    let name: String
    let document: Document
    var writers: [String: Writer] = [:]
    var names: [String] = []
    var batches: [(author: String, ops: [CRDTOperation])] = []
    /// The receivers' physical time when they apply the batches.
    var nowMillis = CRDTVectors.baseMillis + 3_600_000

    init(_ name: String, _ document: Document = .conversation, devices: [(String, UInt8)]) {
        self.name = name
        self.document = document
        for (device, digit) in devices {
            writers[device] = Writer(replica: Replica(id: CRDTVectors.replica(digit)))
            names.append(device)
        }
    }

    /// `device` edits its conversation at `second` seconds after the base time; the edit's
    /// operations become the next batch, whose index is returned.
    @discardableResult
    mutating func edit(
        _ device: String, at second: UInt64,
        _ body: (inout ConversationDocument, inout Replica, UInt64) throws -> [CRDTOperation]
    ) throws -> Int {
        try write(device, at: second) { writer, time in try body(&writer.conversation, &writer.replica, time) }
    }

    /// `device` edits its library copy.
    @discardableResult
    mutating func editLibrary(
        _ device: String, at second: UInt64,
        _ body: (inout AccountLibraryDocument, inout Replica, UInt64) throws -> [CRDTOperation]
    ) throws -> Int {
        try write(device, at: second) { writer, time in try body(&writer.library, &writer.replica, time) }
    }

    private mutating func write(
        _ device: String, at second: UInt64, _ body: (inout Writer, UInt64) throws -> [CRDTOperation]
    ) throws -> Int {
        guard var writer = writers[device] else { throw VectorGenerationError("no device \(device)") }
        let ops = try body(&writer, CRDTVectors.baseMillis + second * 1000)
        writers[device] = writer
        batches.append((device, ops))
        return batches.count - 1
    }

    /// A batch of hand-made operations (an equivocating member's).
    mutating func forge(_ device: String, _ ops: [CRDTOperation]) {
        batches.append((device, ops))
    }

    /// Device `device` receives batches `indices` (in that order) and merges its clock.
    mutating func deliver(_ indices: [Int], to device: String) throws {
        guard var writer = writers[device] else { throw VectorGenerationError("no device \(device)") }
        for index in indices {
            let ops = try OperationBatch.decode(OperationBatch.encode(batches[index].ops))
            let report =
                document == .conversation
                ? writer.conversation.apply(ops, physicalMillis: nowMillis)
                : writer.library.apply(ops, physicalMillis: nowMillis)
            // Merged at the received time itself, so the writer's later edits keep the scenario's times.
            writer.replica.observe(report.newestTimestamp, physicalMillis: report.newestTimestamp?.millis ?? 0)
        }
        writers[device] = writer
    }

    /// The creation order, and every device's batches in turn from the last device to the first
    /// (each author's own order kept, dependencies often arriving late).
    var orders: [[Int]] {
        let first = Array(batches.indices)
        let second = names.reversed().flatMap { device in batches.indices.filter { batches[$0].author == device } }
        return [first, second]
    }
}

/// `document_merge.json`.
enum MergeVectors {
    static func cases() throws -> VectorJSON {
        .array(try MergeScenarios.all().map(render))
    }

    /// Applies the scenario's batches in each order to a fresh document, checks that every
    /// order gives the same state and the same report, and writes the vector.
    static func render(_ scenario: MergeScenario) throws -> VectorJSON {
        var results: [(state: [UInt8], expected: VectorJSON, outcome: [(String, VectorJSON)])] = []
        for order in scenario.orders {
            var conversation = ConversationDocument()
            var library = AccountLibraryDocument()
            var rejected: [Rejection] = []
            var deferred: [Deferral] = []
            for index in order {
                let ops = try OperationBatch.decode(OperationBatch.encode(scenario.batches[index].ops))
                let report =
                    scenario.document == .conversation
                    ? conversation.apply(ops, physicalMillis: scenario.nowMillis)
                    : library.apply(ops, physicalMillis: scenario.nowMillis)
                rejected += report.rejected
                deferred += report.deferred
            }
            let pending = scenario.document == .conversation ? conversation.pendingCount : library.pendingCount
            let hash = scenario.document == .conversation ? conversation.stateHash : library.stateHash
            let expected =
                scenario.document == .conversation ? Rendering.conversation(conversation) : Rendering.library(library)
            let outcome: [(String, VectorJSON)] = [
                ("rejected", .array(rejected.sorted { $0.id < $1.id }.map(Rendering.rejection))),
                ("deferred", .array(deferred.sorted { $0.id < $1.id }.map(Rendering.deferral))),
                ("pending_count", .int(UInt64(pending))),
                ("state_hash_hex", .hex(hash.bytes)),
            ]
            results.append((hash.bytes, expected, outcome))
        }
        guard let result = results.first,
            results.allSatisfy({ $0.state == result.state && $0.expected.rendered() == result.expected.rendered() }),
            results.allSatisfy({
                VectorJSON.object($0.outcome).rendered() == VectorJSON.object(result.outcome).rendered()
            })
        else { throw VectorGenerationError("\(scenario.name): the delivery orders disagree") }
        let replicas = scenario.names.compactMap { name in
            scenario.writers[name].map { (name, VectorJSON.hex($0.replica.id.bytes)) }
        }
        let batches = scenario.batches.map { batch in
            VectorJSON.object([
                ("author", .string(batch.author)), ("batch_hex", .hex(OperationBatch.encode(batch.ops))),
            ])
        }
        return .object(
            [
                ("name", .string(scenario.name)), ("document", .string(scenario.document.rawValue)),
                ("now_ms", .int(scenario.nowMillis)), ("replicas", .object(replicas)), ("batches", .array(batches)),
                ("orders", .array(scenario.orders.map { .array($0.map { .int(UInt64($0)) }) })),
                ("expected", result.expected),
            ] + result.outcome)
    }
}

/// The rendered views of CONVERSATIONS.md §7 and §8 as JSON.
enum Rendering {
    static func conversation(_ document: ConversationDocument) -> VectorJSON {
        var preorder: [MessageID] = []
        var stack = document.children(of: nil).reversed() as [MessageID]
        while let next = stack.popLast() {
            preorder.append(next)
            stack += document.children(of: next).reversed()
        }
        let messages = preorder.compactMap { document.message($0) }.map { message in
            VectorJSON.object([
                ("id", CRDTJSON.id(message.id)), ("parent", CRDTJSON.id(message.parent)),
                ("role", CRDTJSON.role(message.role)), ("created", CRDTJSON.timestamp(message.created)),
                ("text", .string(message.text)), ("deleted", .bool(message.isDeleted)),
                ("reactions", reactions(message.reactions)),
            ])
        }
        let branch = document.activeBranch().map { message in
            VectorJSON.object([
                ("id", CRDTJSON.id(message.id)), ("parent", CRDTJSON.id(message.parent)),
                ("role", CRDTJSON.role(message.role)), ("author_hex", .hex(message.author.bytes)),
                ("created", CRDTJSON.timestamp(message.created)), ("text", .string(message.text)),
                ("reactions", reactions(message.reactions)), ("deleted", .bool(message.isDeleted)),
                ("sibling_index", .int(UInt64(message.siblingIndex))),
                ("sibling_count", .int(UInt64(message.siblingCount))),
            ])
        }
        let markers = document.readMarkers.sorted { $0.key < $1.key }.map { device, upTo in
            VectorJSON.object([("device_hex", .hex(device.bytes)), ("up_to", CRDTJSON.timestamp(upTo))])
        }
        return .object([
            ("active_branch", .array(branch)), ("messages", .array(messages)),
            ("metadata", metadata(document.metadata)), ("read_markers", .array(markers)),
        ])
    }

    static func metadata(_ metadata: ConversationMetadata) -> VectorJSON {
        let custom = metadata.custom.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        return .object([
            ("title", metadata.title.map(VectorJSON.string) ?? .null), ("pinned", .bool(metadata.pinned)),
            ("archived", .bool(metadata.archived)), ("model", metadata.model.map(VectorJSON.string) ?? .null),
            ("folder", CRDTJSON.id(metadata.folder)),
            (
                "custom",
                .array(custom.map { .object([("key", .string($0.key)), ("value", CRDTJSON.value($0.value))]) })
            ),
        ])
    }

    static func reactions(_ reactions: [Reaction]) -> VectorJSON {
        .array(reactions.map { .object(CRDTJSON.reaction($0)) })
    }

    static func library(_ library: AccountLibraryDocument) -> VectorJSON {
        let settings = library.settings.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        return .object([
            (
                "conversations",
                .array(
                    library.conversations.map {
                        .object([("key_hex", .hex($0.key.bytes)), ("state", CRDTJSON.state($0.state))])
                    })
            ),
            (
                "folders",
                .array(library.folders.map { .object([("id", CRDTJSON.id($0.id)), ("name", .string($0.name))]) })
            ),
            (
                "settings",
                .array(settings.map { .object([("key", .string($0.key)), ("value", CRDTJSON.value($0.value))]) })
            ),
        ])
    }

    static func rejection(_ rejection: Rejection) -> VectorJSON {
        let reason: String
        switch rejection.reason {
        case .wrongDocumentKind: reason = "wrongDocumentKind"
        case .reusedOperationID: reason = "reusedOperationID"
        case .emptyOperation: reason = "emptyOperation"
        case .counterOutOfRange: reason = "counterOutOfRange"
        case .replicaLimitReached: reason = "replicaLimitReached"
        case .invalidReference: reason = "invalidReference"
        case .parentMismatch: reason = "parentMismatch"
        case .sizeLimitExceeded: reason = "sizeLimitExceeded"
        }
        return .object([("id", CRDTJSON.id(rejection.id)), ("reason", .string(reason))])
    }

    static func deferral(_ deferral: Deferral) -> VectorJSON {
        .object([
            ("id", CRDTJSON.id(deferral.id)), ("timestamp", CRDTJSON.timestamp(deferral.timestamp)),
            ("due_ms", .int(deferral.dueMillis)),
        ])
    }
}
