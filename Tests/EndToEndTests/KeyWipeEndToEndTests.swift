import CloakCRDT
@_spi(Simulation) @testable import CloakClient
import CloakProtocol
import Foundation
import Testing

/// A removed device wipes its keys (PROTOCOL.md §23): checked in the bytes of its files, not
/// only by a decryption that fails (ADV-08).
@Suite("End to end: a removed device's keys are gone from its files", .serialized)
struct KeyWipeEndToEndTests {
    /// Whether `needle` occurs in any file under `directory` (the database, its write-ahead log
    /// and shared memory, the secrets).
    static func occurs(_ needle: [UInt8], in directory: URL) -> Bool {
        let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)?.allObjects as? [URL] ?? []
        return files.contains { file in
            guard let bytes = FileManager.default.contents(atPath: file.path) else { return false }
            return bytes.range(of: Data(needle)) != nil
        }
    }

    @Test("ADV-08 a removed device's sealed epoch keys are in none of its files any more, byte for byte")
    func removalWipesKeyBytes() async throws {
        let root = try temporaryDirectory("wipe")
        defer { try? FileManager.default.removeItem(at: root) }
        try await withServer { server in
            let (a, b) = try await syncingPair(root, server)
            let chat = try await a.createConversation(title: "wipe")
            try await a.appendMessage(to: chat, role: .user, text: "cloak-canary-wipe")
            try await eventually("b has the message") { await b.conversation(chat)?.messages.count == 1 }
            let sealed = try await b._sealedEpochKeys()
            #expect(!sealed.isEmpty)
            let directory = root.appendingPathComponent("b")
            // The scan finds them while B is a member (so it can fail).
            #expect(sealed.allSatisfy { Self.occurs($0, in: directory) })

            try await a.removeDevice(b.deviceID)
            try await eventually("b learns it was removed") {
                if case .refused = await b.connectionState { return true }
                return false
            }
            #expect(try await b._sealedEpochKeys().isEmpty)
            // Scanned while B is still open: closing the database would checkpoint it anyway.
            for key in sealed { #expect(!Self.occurs(key, in: directory), "a wiped key's bytes remain in a file") }
            try await a.close()
            try await b.close()
        }
    }
}

extension CloakClient {
    /// The epoch keys as this device's store holds them (sealed by its local cipher).
    func _sealedEpochKeys() throws -> [[UInt8]] {
        try engine.core.store.read { tx in try tx.epochKeys().map(\.sealed) }
    }
}
