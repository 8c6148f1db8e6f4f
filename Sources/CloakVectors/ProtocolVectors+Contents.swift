import CloakCRDT
import CloakProtocol

/// What the vector world's change sets and snapshots carry: real operation batches
/// (CONVERSATIONS.md §5) by each author's replica, which is its DeviceID, and the conversation's
/// state after them (§9), so that a second implementation can decrypt a vector and read it.
struct WorldContents {
    let aFirst: [UInt8]
    let cFirst: [UInt8]
    let aSecond: [UInt8]
    let bLibrary: [UInt8]
    /// Conversation X after A seq 1, C seq 1 and A seq 2 (what the snapshots cover).
    let state: [UInt8]

    init(a: VectorDevice, b: VectorDevice, c: VectorDevice, conversation: ConversationID) throws {
        guard let ra = ReplicaID(bytes: a.id.bytes), let rb = ReplicaID(bytes: b.id.bytes),
            let rc = ReplicaID(bytes: c.id.bytes), let key = ConversationKey(bytes: conversation.bytes)
        else { throw VectorGenerationError("replica ids") }
        var (me, them) = (Replica(id: ra), Replica(id: rc))
        var (mine, theirs) = (ConversationDocument(), ConversationDocument())
        let time = ProtocolVectors.baseTimeMs + 3_600_000
        let ask = try mine.createMessage(
            parent: nil, role: .user, text: "Where shall we have lunch tomorrow?", replica: &me, physicalMillis: time)
        let title = try mine.setTitle("Lunch", replica: &me, physicalMillis: time)
        aFirst = OperationBatch.encode([ask, title])
        _ = theirs.apply([ask, title], physicalMillis: time + 1_000)
        let reply = try theirs.createMessage(
            parent: ask.id, role: .assistant, text: "Noodles?", replica: &them, physicalMillis: time + 1_000)
        cFirst = OperationBatch.encode([reply])
        _ = mine.apply([reply], physicalMillis: time + 2_000)
        me.observe(reply.timestamp, physicalMillis: time + 2_000)
        let long = String(repeating: "The noodle bar on the corner opens at noon. ", count: 13)
        let follow = try mine.createMessage(
            parent: reply.id, role: .user, text: long, replica: &me, physicalMillis: time + 2_000)
        aSecond = OperationBatch.encode([follow])
        state = mine.snapshot()
        var writer = Replica(id: rb)
        var library = AccountLibraryDocument()
        let add = try library.addConversation(key, replica: &writer, physicalMillis: time + 5_000)
        let theme = try library.setSetting("theme", to: .text("dark"), replica: &writer, physicalMillis: time + 5_000)
        bLibrary = OperationBatch.encode([add, theme])
    }
}
