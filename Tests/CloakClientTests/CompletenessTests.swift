import CloakCRDT
import CloakCrypto
import CloakProtocol
import Testing

@_spi(Simulation) @testable import CloakClient

/// PROTOCOL.md §29 "What a client checks, and when", one rule at a time, with the server
/// played by the test: what it withholds must become an event and an open incident, never a
/// silent wait, and the device must not seal new change sets under a log it knows is stale.
@Suite("Completeness: withheld log entries and change sets")
struct CompletenessTests {
    /// ADV-45 / §29: a member's change set names a device-log entry (a new device) that the
    /// server's log does not serve. The device reports `deviceLogWithheld`, keeps its new edits
    /// in the outbox unsealed, and seals them only once the server serves the entry.
    @Test("ADV-12 ADV-45 a withheld device-log entry stops sealing until the log is served")
    func withheldLogEntryStopsSealing() async throws {
        let clock = ManualClock()
        let devices = try await makeAccount(devices: 2, seed: 91, clock: clock)
        let (a, b) = (devices[0], devices[1])
        let chat = try await a.createConversation(title: "cloak-canary-withheld-log")
        try await a.appendMessage(to: chat, role: .user, text: "first")
        _ = try await b._receive(try await a._drainOutbox().enumerated().map { (UInt64($0.offset + 1), $0.element) })
        let logBefore = await a._logWires()

        // A adds a device and writes under the longer log; the server serves B the old log.
        let newcomer = try makeClient(seed: 9_191, clock: clock)
        let (signing, agreement) = await newcomer._publicKeys()
        _ = try await a._addDevice(signingKey: signing, agreementKey: agreement)
        try await a.appendMessage(to: chat, role: .user, text: "after the add")
        let held = try await b._receive(try await a._drainOutbox().enumerated().map { (UInt64(100 + $0.offset), $0.element) })
        #expect(held.fetchDeviceLog)
        #expect(await b._heldCount() == 1)
        let served = try await b._receiveLog(logBefore)
        #expect(served.events.map(\.kind).contains(.deviceLogWithheld))
        #expect(await b.syncStatus().incidents.contains { $0.kind == .deviceLogWithheld })
        #expect(await !b.syncStatus().isSynced)

        // B writes meanwhile: the edit is kept, but nothing is sealed under the stale log.
        try await b.rename(chat, to: "renamed while stale")
        #expect(try await b._drainOutbox().isEmpty)
        #expect(await b.syncStatus().unacknowledgedEdits > 0)

        // The server serves the entry: the incident closes, the held change set applies, and
        // B's edit is sealed under the log that includes the new device.
        let resolved = try await b._receiveLog(await a._logWires())
        #expect(resolved.events.map(\.kind).contains(.incidentResolved))
        #expect(await !b.syncStatus().incidents.contains { $0.kind == .deviceLogWithheld })
        #expect(await texts(b, chat) == ["first", "after the add"])
        #expect(await b.conversations().first { $0.id == chat }?.title == "renamed while stale")
        let sealed = try await b._drainOutbox()
        #expect(sealed.count == 1)
        let header = try ChangeSet(wire: sealed[0]).header
        #expect(header.deviceLogIndex == UInt64(logBefore.count))
    }

    /// ADV-12: a served log shorter than the one this device verified is one incident (not an
    /// event per fetch), and it closes when the whole log is served again.
    @Test("ADV-12 ADV-44 a shortened device log is one incident that closes when the log is whole again")
    func shortenedLogIsOneIncident() async throws {
        let devices = try await makeAccount(devices: 3, seed: 92)
        let (a, b) = (devices[0], devices[1])
        let whole = await a._logWires()
        let short = Array(whole.prefix(whole.count - 1))
        let first = try await b._receiveLog(short)
        #expect(first.events.map(\.kind) == [.deviceLogRollback])
        let second = try await b._receiveLog(short)
        #expect(second.events.isEmpty)
        #expect(await b.syncStatus().incidents.filter { $0.kind == .deviceLogRollback }.count == 1)
        let healed = try await b._receiveLog(whole)
        #expect(healed.events.map(\.kind).contains(.incidentResolved))
        #expect(await b.syncStatus().incidents.isEmpty)
    }

    /// ADV-45: a gap named by a later change set of the chain is re-requested, and reported as
    /// withheld once it stays missing past `withheldAfterMillis` of live, caught-up time.
    @Test("ADV-45 a gap that stays unfilled is reported withheld, naming author, conversation and range")
    func unfilledGapIsWithheld() async throws {
        let clock = ManualClock()
        var configuration = ClientConfiguration()
        configuration.withheldAfterMillis = 1_000
        let devices = try await makeAccount(devices: 2, seed: 93, clock: clock, configuration: configuration)
        let (a, b) = (devices[0], devices[1])
        let chat = try await a.createConversation(title: "gap")
        for text in ["one", "two", "three"] { try await a.appendMessage(to: chat, role: .user, text: text) }
        let wires = try await a._drainOutbox()
        // Everything but the second-to-last change set of the chat's chain: the last names it.
        let inChat = try wires.indices.filter { try ChangeSet(wire: wires[$0]).header.conversation == chat }
        try #require(inChat.count >= 2)
        var delivered = wires
        let withheld = delivered.remove(at: inChat[inChat.count - 2])
        let output = try await b._receive(delivered.enumerated().map { (UInt64($0.offset + 1), $0.element) })
        #expect(!output.gaps.isEmpty)
        let gap = try #require(output.gaps.first)
        let missing = try ChangeSet(wire: withheld).header
        #expect(gap.author == missing.author && gap.conversation == missing.conversation)
        #expect((gap.fromSeq...gap.toSeq).contains(missing.seq))
        let first = try await b._reviewExpectations()
        #expect(first.events.isEmpty)  // asked for, not yet overdue
        clock.advance(1_500)
        let overdue = try await b._reviewExpectations()
        let event = try #require(overdue.events.first { $0.kind == .withheld })
        #expect(event.device == missing.author && event.conversation == missing.conversation)
        #expect(await !b.syncStatus().isSynced)
        // Delivered at last: applied, and the incident resolves.
        _ = try await b._receive([(UInt64(50), withheld)])
        let after = try await b._reviewExpectations()
        #expect(after.events.map(\.kind).contains(.incidentResolved))
        #expect(await texts(b, chat) == ["one", "two", "three"])
    }

    @Test("ADV-45 a stored withheld incident whose expectation was lost (a restart) is expected again and closes")
    func storedIncidentIsExpectedAgain() async throws {
        let clock = ManualClock()
        var configuration = ClientConfiguration()
        configuration.withheldAfterMillis = 1_000
        let devices = try await makeAccount(devices: 2, seed: 97, clock: clock, configuration: configuration)
        let (a, b) = (devices[0], devices[1])
        let chat = try await a.createConversation(title: "restart")
        for text in ["one", "two", "three"] { try await a.appendMessage(to: chat, role: .user, text: text) }
        let wires = try await a._drainOutbox()
        let inChat = try wires.indices.filter { try ChangeSet(wire: wires[$0]).header.conversation == chat }
        var delivered = wires
        let withheld = delivered.remove(at: inChat[inChat.count - 2])
        _ = try await b._receive(delivered.enumerated().map { (UInt64($0.offset + 1), $0.element) })
        _ = try await b._reviewExpectations()
        clock.advance(1_500)
        #expect(try await b._reviewExpectations().events.contains { $0.kind == .withheld })
        // The process restarts: the incident is stored, what was expected is not.
        await b._forgetExpectations()
        _ = try await b._receive([(UInt64(50), withheld)])
        let after = try await b._reviewExpectations()
        #expect(after.events.map(\.kind).contains(.incidentResolved))
        #expect(await b.syncStatus().incidents.isEmpty)
    }

    @Test("ADV-09 ADV-45 a position expected before a removal but past its cut-off is not waited for: the incident closes")
    func expectationPastRemovalCutoffCloses() async throws {
        let clock = ManualClock()
        var configuration = ClientConfiguration()
        configuration.withheldAfterMillis = 1_000
        let devices = try await makeAccount(devices: 3, seed: 94, clock: clock, configuration: configuration)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let relay = Relay()
        let chat = try await a.createConversation(title: "cut")
        try await relay.collect(from: a)
        for device in [b, c] { _ = try await relay.deliverAll(to: device) }
        var fromC: [[UInt8]] = []
        for n in 0..<3 {
            try await c.appendMessage(to: chat, role: .user, text: "c \(n)")
            fromC += try await c._drainOutbox()
        }
        // B gets C's first and third change sets: the second is known to exist and missing.
        _ = try await a._receive([(100, fromC[0])])
        _ = try await b._receive([(100, fromC[0]), (102, fromC[2])])
        _ = try await b._reviewExpectations()
        clock.advance(1_500)
        let overdue = try await b._reviewExpectations()
        #expect(overdue.events.contains { $0.kind == .withheld && $0.device == c.deviceID })
        // A removes C having seen only its first change set: the cut-off is seq 1.
        let (log, envelopes) = try await a._removeLocally(c.deviceID)
        _ = try await b._receiveLog(log)
        _ = try await b._receiveEnvelopes(envelopes)
        let after = try await b._reviewExpectations()
        #expect(after.events.map(\.kind).contains(.incidentResolved))
        #expect(await b.syncStatus().incidents.isEmpty)
        #expect(await texts(b, chat) == (await texts(a, chat)))
    }

    /// Seed 10148: the server keeps the new epoch's envelope from B, and B holds nothing sealed
    /// under that epoch, so no held change set reports it; B cannot seal its edits. It asks
    /// for the envelopes, reports the key withheld after `withheldAfterMillis`, and the
    /// incident closes when the key arrives.
    @Test("ADV-45 a current epoch key kept from a member is asked for, then reported withheld, and closes when it comes")
    func withheldCurrentEpochKeyIsReported() async throws {
        let clock = ManualClock()
        var configuration = ClientConfiguration()
        configuration.withheldAfterMillis = 1_000
        let devices = try await makeAccount(devices: 3, seed: 97, clock: clock, configuration: configuration)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let (log, envelopes) = try await a._removeLocally(c.deviceID)
        _ = try await b._receiveLog(log)
        _ = try await b.createConversation(title: "cloak-canary-unsealed")
        #expect(try await b._drainOutbox().isEmpty, "nothing can be sealed without the key")
        let noticed = try await b._reviewExpectations()
        #expect(noticed.fetchKeyEnvelopes)
        #expect(noticed.events.isEmpty, "not overdue yet")
        clock.advance(1_500)
        let overdue = try await b._reviewExpectations()
        let event = try #require(overdue.events.first { $0.kind == .withheld })
        #expect(event.detail.contains("key of epoch 2"))
        #expect(overdue.fetchKeyEnvelopes)
        #expect(await !b.syncStatus().isSynced)
        _ = try await b._receiveEnvelopes(envelopes)
        let healed = try await b._reviewExpectations()
        #expect(healed.events.map(\.kind).contains(.incidentResolved))
        #expect(await b.syncStatus().incidents.isEmpty)
        #expect(try await !b._drainOutbox().isEmpty, "the edit is sealed under the key")
    }

    @Test("ADV-44 a server that lost the current epoch's envelope to a device active when the epoch began is caught")
    func lostOwnEnvelopeIsARollback() async throws {
        let devices = try await makeAccount(devices: 3, seed: 95)
        let (a, b, c) = (devices[0], devices[1], devices[2])
        let (log, envelopes) = try await a._removeLocally(c.deviceID)
        _ = try await b._receiveLog(log)
        _ = try await b._receiveEnvelopes(envelopes)
        let mine = envelopes.filter { $0.recipient == b.deviceID }
        #expect(mine.map(\.epoch) == [2])
        // The server's list as an honest server keeps it, then as a restored one serves it.
        #expect(try await b._lostOwnEnvelope(in: mine) == nil)
        #expect(try await b._lostOwnEnvelope(in: []) == 2)
        // A device that joined after the epoch began holds its key through another envelope:
        // it expects nothing of its own for that epoch.
        let late = try makeClient(seed: 96)
        let (signing, agreement) = await late._publicKeys()
        let added = try await b._addDevice(signingKey: signing, agreementKey: agreement)
        try await late._join(log: added.0, envelopes: added.1)
        #expect(try await late._lostOwnEnvelope(in: []) == nil)
    }
}

extension CloakClient {
    func _forgetExpectations() { engine.core.expectations = Expectations() }

    func _lostOwnEnvelope(in served: [KeyEnvelope]) throws -> UInt64? { try engine.core.lostOwnEnvelope(in: served) }

    func _reviewExpectations() throws -> CoreOutput {
        let output = try engine.core.reviewExpectations()
        engine.surface(output)
        drain()
        return output
    }
}
