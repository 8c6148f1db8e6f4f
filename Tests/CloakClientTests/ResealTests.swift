import CloakCRDT
import CloakProtocol
import Testing

@_spi(Simulation) @testable import CloakClient

@Suite("Re-sealing own change sets refused as stale")
struct ResealTests {
    /// ADV-08 ADV-13: a change set refused as stale waits for the new epoch's key to be
    /// re-sealed. If it was pushed again meanwhile and that push is not answered yet, the
    /// server may store it this time (one restored from a backup older than the removal): a
    /// re-seal then would put a second change set at its position. It waits for the answer.
    @Test("ADV-08 ADV-13 a stale-refused change set is not re-sealed while a push of it is unanswered; once answered it is")
    func noResealWhileAPushIsUnanswered() async throws {
        let devices = try await makeAccount(devices: 3, seed: 31)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        _ = try await b.createConversation(title: "written before the removal")
        let sealed = try await b._sealedOutbox()
        #expect(!sealed.isEmpty)
        let (log, envelopes) = try await a._removeLocally(c.deviceID)
        _ = try await b._receiveLog(log)
        _ = try await b._receiveEnvelopes(envelopes)

        // Refused as stale, then pushed again, and that push is still out.
        try await b._staleRefused(sealed, pushedAgain: true)
        #expect(try await b._resealStale() == false)
        #expect(try await b._sealedOutbox() == sealed, "the originals stay while the server may store them")

        // The server answered (refused again): now they are re-sealed under the new head.
        try await b._answered(sealed)
        #expect(try await b._resealStale())
        #expect(Set(try await b._sealedOutbox()).isDisjoint(with: sealed))
    }
}

extension CloakClient {
    /// Seals what waits and returns the outbox's change sets, oldest first.
    fileprivate func _sealedOutbox() throws -> [ChangeSetHash] {
        _ = try engine.core.flushDueBatches(force: true)
        return try engine.core.outboxChangeSets(limit: 100).map(\.hash)
    }

    /// As if the server had refused these as stale on an answered push, and (with
    /// `pushedAgain`) a later push of them had left without an answer yet.
    fileprivate func _staleRefused(_ hashes: [ChangeSetHash], pushedAgain: Bool) throws {
        engine.core.outbox.staleRefused.formUnion(hashes)
        if pushedAgain { try engine.core.markPushed(hashes) }
    }

    /// As if the answer to the push of these came, storing none of them.
    fileprivate func _answered(_ hashes: [ChangeSetHash]) throws {
        try engine.core.acknowledge([], answered: Set(hashes))
    }

    fileprivate func _resealStale() throws -> Bool { try engine.core.resealStaleOutbox() }
}
