import Foundation
import Testing

@testable import CloakSimulation

@Suite("The live mode's verdicts fail when they must")
struct LiveVerdictTests {
    static let options = LiveOptions(servers: [URL(fileURLWithPath: "/")], accounts: 2, devices: 3, settleSeconds: 20)

    static func verdicts(
        accepted: Int = 10, renders: Int = 20, convergence: [Double?] = [5, 7], durability: (failures: [String], count: Int) = ([], 0),
        findings: [String] = [], alarms: Tally = Tally()
    ) -> [String: LiveResult.Check] {
        let scan = LiveResult.CanaryScan(
            canaries: 10, serverBytes: 4096, serverScanned: true, clientBytes: 8192, clientFiles: 6, findings: findings)
        let checks = LiveVerdicts(
            options: options, accepted: accepted, renders: renders, convergence: convergence, durability: durability, scan: scan,
            alarms: alarms
        ).checks
        return Dictionary(uniqueKeysWithValues: checks.map { ($0.name, $0) })
    }

    @Test("an honest, busy run passes every check")
    func passes() {
        let checks = Self.verdicts()
        #expect(checks.keys.sorted() == ["canaries", "convergence", "durability", "integrity", "liveness"])
        #expect(checks.values.allSatisfy { $0.passed })
    }

    @Test("an idle run fails liveness rather than passing every other check vacuously")
    func idle() {
        #expect(Self.verdicts(accepted: 0, renders: 0)["liveness"]?.passed == false)
        #expect(Self.verdicts(accepted: 5, renders: 0)["liveness"]?.passed == false)
    }

    @Test("an account that did not settle fails convergence and is named")
    func unconverged() throws {
        let check = try #require(Self.verdicts(convergence: [5, nil])["convergence"])
        #expect(!check.passed)
        #expect(check.detail.contains("accounts 1 did not converge within 20 s"))
    }

    @Test("a missing operation fails durability with its description")
    func lost() throws {
        let check = try #require(Self.verdicts(durability: (["a0.d1: lacks the message of a append operation (x)"], 1))["durability"])
        #expect(!check.passed && check.detail.contains("a0.d1: lacks the message"))
    }

    @Test("a canary anywhere fails confidentiality (ADV-15); a security alarm fails integrity")
    func leaksAndAlarms() {
        #expect(Self.verdicts(findings: ["/tmp/x.sqlite-wal (base64)"])["canaries"]?.passed == false)
        var alarms = Tally()
        alarms.add("forkedView")
        let integrity = Self.verdicts(alarms: alarms)["integrity"]
        #expect(integrity?.passed == false && integrity?.detail.contains("forkedView 1") == true)
    }

    @Test("ADV-15: the live canary scan finds a canary in a device store, a server database or a log line, in any encoding")
    func scanFindsPlantedCanaries() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-live-scan-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: root) }
        let device = root.appendingPathComponent("clients/a0.d1")
        try FileManager.default.createDirectory(at: device, withIntermediateDirectories: true)
        let clean = root.appendingPathComponent("clients/a0.d0")
        try FileManager.default.createDirectory(at: clean, withIntermediateDirectories: true)
        try Data("nothing to see".utf8).write(to: clean.appendingPathComponent("cloak.sqlite"))

        let quiet = LiveChecks.scanCanaries(
            serverFiles: [], clientRoot: root.appendingPathComponent("clients"), canaries: 1, logLeaks: [])
        #expect(quiet.findings.isEmpty && quiet.clientFiles == 1 && !quiet.serverScanned)

        let canary = Data("padding cloak-canary-7-1 padding".utf8)
        try Data(canary.base64EncodedString().utf8).write(to: device.appendingPathComponent("cloak.sqlite-wal"))
        let server = root.appendingPathComponent("server.sqlite")
        try canary.write(to: server)
        let scan = LiveChecks.scanCanaries(
            serverFiles: [server, root.appendingPathComponent("server.sqlite-wal")], clientRoot: root.appendingPathComponent("clients"),
            canaries: 1, logLeaks: ["notice text=cloak-canary-7-2"])
        #expect(scan.findings.count == 3)
        #expect(scan.findings.contains { $0.hasSuffix("cloak.sqlite-wal (base64)") })
        #expect(scan.findings.contains { $0.hasSuffix("server.sqlite (utf-8)") })
        #expect(scan.findings.contains { $0.contains("log line") })
        #expect(scan.serverScanned && scan.serverBytes == canary.count)
    }
}
