import CloakCRDT
import CloakCrypto
import CloakProtocol
import CloakTesting
import Foundation
import Testing

/// The conversation vectors (CONVERSATIONS.md §14) checked from their own inputs: batches
/// decode to the listed operations and re-encode to the same bytes, malformed ones are refused,
/// each merge gives its state hash and rendering in both delivery orders, snapshots load and
/// write back byte for byte, and the state hash of each input is the listed one.
@Suite("Conversation vectors")
struct ConversationVectorTests {
    struct Identifier: Decodable, Equatable {
        let replicaHex: String
        let counter: UInt64
    }

    struct Operation: Decodable {
        let kindValue: UInt8
        let id: Identifier
        let counterCount: UInt64
    }

    struct BatchVector: Decodable {
        let name, batchHex: String
        let operations: [Operation]?
        let error: String?
    }

    @Test("operation_batch.json: every batch decodes to its operations and back; malformed ones are refused")
    func batches() throws {
        let vectors = try VectorTests.load("operation_batch.json", as: BatchVector.self)
        var kinds: Set<UInt8> = []
        for vector in vectors {
            let bytes = try Hex.decode(vector.batchHex)
            guard let expected = vector.operations else {
                #expect(throws: CRDTDecodingError.self, "\(vector.name)") { try OperationBatch.decode(bytes) }
                #expect(vector.error != nil)
                continue
            }
            let ops = try OperationBatch.decode(bytes)
            #expect(ops.count == expected.count, "\(vector.name)")
            for (op, listed) in zip(ops, expected) {
                #expect(Identifier(replicaHex: op.id.replica.description, counter: op.id.counter) == listed.id)
                #expect(op.counterCount == listed.counterCount)
                kinds.insert(listed.kindValue)
            }
            #expect(OperationBatch.encode(ops, coalescing: false) == bytes, "\(vector.name) re-encodes")
        }
        #expect(kinds == Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 17, 18, 19, 20, 21, 22]), "every operation kind")
    }

    struct MergeVector: Decodable {
        struct Batch: Decodable {
            let author, batchHex: String
        }
        struct Rendered: Decodable {
            struct Message: Decodable {
                let text: String
            }
            let activeBranch: [Message]?
        }
        let name, document: String
        let nowMs: UInt64
        let batches: [Batch]
        let orders: [[Int]]
        let expected: Rendered
        let rejected, deferred: [[String: AnyIdentifier]]
        let pendingCount: Int
        let stateHashHex: String
    }

    /// Only the presence of an object is read from report entries.
    struct AnyIdentifier: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    @Test("document_merge.json: both delivery orders reach the listed state, rendering and reports")
    func merges() throws {
        for vector in try VectorTests.load("document_merge.json", as: MergeVector.self) {
            #expect(vector.orders.count == 2)
            for order in vector.orders {
                var conversation = ConversationDocument()
                var library = AccountLibraryDocument()
                var rejected = 0
                var deferred = 0
                for index in order {
                    let ops = try OperationBatch.decode(Hex.decode(vector.batches[index].batchHex))
                    let report =
                        vector.document == "library"
                        ? library.apply(ops, physicalMillis: vector.nowMs)
                        : conversation.apply(ops, physicalMillis: vector.nowMs)
                    rejected += report.rejected.count
                    deferred += report.deferred.count
                }
                let hash = vector.document == "library" ? library.stateHash : conversation.stateHash
                #expect(hash.description == vector.stateHashHex, "\(vector.name) in order \(order)")
                #expect(rejected == vector.rejected.count && deferred == vector.deferred.count, "\(vector.name)")
                let pending = vector.document == "library" ? library.pendingCount : conversation.pendingCount
                #expect(pending == vector.pendingCount)
                if let branch = vector.expected.activeBranch {
                    #expect(conversation.activeBranch().map(\.text) == branch.map(\.text), "\(vector.name)")
                }
            }
        }
    }

    struct SnapshotVector: Decodable {
        let name, document, snapshotHex, canonicalStateHex, stateHashHex: String
    }

    @Test("document_snapshot.json: each snapshot loads, writes back byte for byte, and hashes its canonical state")
    func snapshots() throws {
        for vector in try VectorTests.load("document_snapshot.json", as: SnapshotVector.self) {
            let bytes = try Hex.decode(vector.snapshotHex)
            let canonical = try Hex.decode(vector.canonicalStateHex)
            #expect(Array(bytes.prefix(canonical.count)) == canonical)
            #expect(StateHash(of: canonical).description == vector.stateHashHex)
            if vector.document == "library" {
                let library = try AccountLibraryDocument(snapshot: bytes)
                #expect(library.snapshot() == bytes && library.stateHash.description == vector.stateHashHex)
            } else {
                let document = try ConversationDocument(snapshot: bytes)
                #expect(document.snapshot() == bytes && document.stateHash.description == vector.stateHashHex)
                #expect(document.pendingCount == 1)
            }
        }
    }

    struct SealedVector: Decodable {
        let name, authorHex, bodyHex: String
    }

    @Test("change_set.json and snapshot.json carry real batches by their author and a loadable state")
    func sealedContents() throws {
        for vector in try VectorTests.load("change_set.json", as: SealedVector.self) {
            let body = try FrameCodec.parse(Cloak_V1_ChangeSetBody.self, from: Hex.decode(vector.bodyHex), what: "body")
            let ops = try OperationBatch.decode(Array(body.operations))
            #expect(!ops.isEmpty && ops.allSatisfy { $0.id.replica.description == vector.authorHex }, "\(vector.name)")
        }
        for vector in try VectorTests.load("snapshot.json", as: SealedVector.self) {
            let body = try FrameCodec.parse(Cloak_V1_SnapshotBody.self, from: Hex.decode(vector.bodyHex), what: "body")
            #expect(try ConversationDocument(snapshot: Array(body.state)).activeBranch().count == 3, "\(vector.name)")
        }
    }

    struct HashVector: Decodable {
        let name, inputHex, stateHashHex: String
    }

    @Test("state_hash.json: SipHash-2-4 under both keys, big-endian words")
    func stateHashes() throws {
        for vector in try VectorTests.load("state_hash.json", as: HashVector.self) {
            #expect(StateHash(of: try Hex.decode(vector.inputHex)).description == vector.stateHashHex, "\(vector.name)")
        }
    }
}
