import CloakCRDT
import CloakTesting
import Testing

@Suite("Account library")
struct AccountLibraryTests {
    static func key(_ byte: UInt8) throws -> ConversationKey {
        try #require(ConversationKey(bytes: [UInt8](repeating: byte, count: 16)))
    }

    @Test("conversations move between active, archived and trashed; purge removes them")
    func lifecycle() throws {
        var me = Replica(id: testReplicaID(1))
        var library = AccountLibraryDocument()
        let key = try Self.key(1)
        _ = try library.addConversation(key, replica: &me, physicalMillis: 1)
        _ = try library.setState(.archived, of: key, replica: &me, physicalMillis: 2)
        #expect(library.state(of: key) == .archived)
        _ = try library.setState(.trashed, of: key, replica: &me, physicalMillis: 3)
        #expect(library.conversations.map(\.state) == [.trashed] && library.conversations.map(\.key) == [key])
        _ = try library.purgeConversation(key, replica: &me, physicalMillis: 4)
        #expect(library.state(of: key) == nil)
        #expect(throws: LibraryEditError.notInLibrary) {
            try library.purgeConversation(key, replica: &me, physicalMillis: 5)
        }
    }

    @Test("a restore concurrent with a purge wins (add-wins)")
    func restoreBeatsPurge() throws {
        var a = Replica(id: testReplicaID(1))
        var b = Replica(id: testReplicaID(2))
        var libraryA = AccountLibraryDocument()
        var libraryB = AccountLibraryDocument()
        let key = try Self.key(2)
        let add = try libraryA.addConversation(key, replica: &a, physicalMillis: 1)
        let trash = try libraryA.setState(.trashed, of: key, replica: &a, physicalMillis: 2)
        _ = libraryB.apply([add] + trash, physicalMillis: 3)
        let purge = try libraryA.purgeConversation(key, replica: &a, physicalMillis: 10)
        let restore = try libraryB.setState(.active, of: key, replica: &b, physicalMillis: 11)
        _ = libraryA.apply(restore, physicalMillis: 12)
        _ = libraryB.apply([purge], physicalMillis: 12)
        #expect(libraryA.state(of: key) == .active)
        #expect(libraryA.stateHash == libraryB.stateHash)
    }

    @Test("folders and settings converge under shuffled delivery; snapshots round-trip", arguments: [5, 6] as [UInt64])
    func foldersAndSettings(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var replicas = (1...3).map { Replica(id: testReplicaID(UInt64($0))) }
        var libraries = Array(repeating: AccountLibraryDocument(), count: 3)
        var ops: [CRDTOperation] = []
        for step in 0..<150 {
            let d = Int.random(in: 0..<3, using: &rng)
            let now = UInt64(100 + step)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0:
                ops.append(try libraries[d].createFolder(name: "f\(step)", replica: &replicas[d], physicalMillis: now))
            case 1:
                if let folder = libraries[d].folders.first {
                    ops.append(
                        try libraries[d].renameFolder(
                            folder.id, to: "r\(step)", replica: &replicas[d], physicalMillis: now))
                }
            case 2:
                if let folder = libraries[d].folders.last {
                    ops.append(try libraries[d].deleteFolder(folder.id, replica: &replicas[d], physicalMillis: now))
                }
            case 3:
                ops.append(
                    try libraries[d].setSetting(
                        "s\(step % 4)", to: .flag(step % 2 == 0), replica: &replicas[d], physicalMillis: now))
            case 4:
                let state = ConversationState.allCases[Int.random(in: 0..<3, using: &rng)]
                ops.append(
                    contentsOf: try libraries[d].setState(
                        state, of: try Self.key(UInt8(step % 5)), replica: &replicas[d], physicalMillis: now))
            default:
                ops.append(
                    try libraries[d].addConversation(
                        try Self.key(UInt8(step % 5)), replica: &replicas[d], physicalMillis: now))
            }
            if step % 10 == 0 {
                let target = Int.random(in: 0..<3, using: &rng)
                _ = libraries[target].apply(ops.shuffled(seed: &rng), physicalMillis: now)
            }
        }
        for index in libraries.indices {
            _ = libraries[index].apply((ops + ops.prefix(20)).shuffled(seed: &rng), physicalMillis: 1_000)
            #expect(libraries[index].pendingCount == 0)
            #expect(libraries[index].stateHash == libraries[0].stateHash)
            #expect(libraries[index].folders == libraries[0].folders)
            #expect(libraries[index].settings == libraries[0].settings)
        }
        let loaded = try AccountLibraryDocument(snapshot: libraries[0].snapshot())
        #expect(loaded.stateHash == libraries[0].stateHash)
        #expect(loaded.conversations == libraries[0].conversations)
        let snapshot = libraries[0].snapshot()
        for length in 0..<snapshot.count {
            #expect(throws: CRDTDecodingError.self) {
                try AccountLibraryDocument(snapshot: Array(snapshot.prefix(length)))
            }
        }
    }
}
