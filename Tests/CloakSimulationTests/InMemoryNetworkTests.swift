import CloakCRDT
@_spi(Simulation) import CloakClient
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
@_spi(Randomness) import CloakServer
@_spi(Randomness) import CloakSimulation
@_spi(Randomness) import CloakTesting
import Foundation
import Logging
import Testing

@Suite("The in-memory transport runs the real client against the real server core")
struct InMemoryNetworkTests {
    func network(seed: UInt64) -> InMemoryNetwork {
        var logger = Logger(label: "sim.server")
        logger.logLevel = .critical
        return InMemoryNetwork(
            server: SynchronousServer(random: DeterministicRandom(seed: seed), logger: logger), clock: SystemWallClock())
    }

    func client(_ network: InMemoryNetwork, seed: UInt64) throws -> CloakClient {
        var configuration = ClientConfiguration()
        configuration.reconnectMinMillis = 20
        configuration.streamBatchMillis = 10
        var logger = Logger(label: "sim.client")
        logger.logLevel = .critical
        return try CloakClient.openInMemory(
            server: network.url, transport: network.transport, configuration: configuration,
            random: DeterministicRandom(seed: seed), logger: logger)
    }

    @Test("three devices link through the mailbox, write concurrently and converge", arguments: [1, 2] as [UInt64])
    func threeDevices(seed: UInt64) async throws {
        let net = network(seed: seed)
        let devices = try (0..<3).map { try client(net, seed: seed * 10 + UInt64($0)) }
        try await devices[0].createAccount()
        for device in devices.dropFirst() {
            let invitation = try await device.beginLink()
            async let pending = device.awaitLink(invitation, pollMillis: 10)
            let offer = try await devices[0].acceptLink(invitation.text)
            let link = try await pending
            #expect(link.shortAuthenticationString == offer.shortAuthenticationString)
            async let joined: Void = device.confirmLink(link, codesMatch: true, pollMillis: 10)
            try await devices[0].completeLink(offer, codesMatch: true, pollMillis: 10)
            try await joined
        }
        for device in devices { await device.startSync() }
        let chat = try await devices[1].createConversation(title: "sim")
        var rng = SeededRandom(seed: seed)
        for n in 0..<30 {
            let device = devices[Int.random(in: 0..<3, using: &rng)]
            if await device.conversation(chat) != nil {
                try await device.appendMessage(to: chat, role: .user, text: "n\(n)")
            }
        }
        for device in devices { _ = await device.waitUntilSynced(timeout: .seconds(20)) }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        var hashes: Set<[UInt8]> = []
        repeat {
            hashes = []
            for device in devices { hashes.insert(await device.stateHash(of: chat) ?? []) }
            if hashes.count == 1 { break }
            try await Task.sleep(for: .milliseconds(20))
        } while clock.now < deadline
        #expect(hashes.count == 1)
        #expect(await devices[2].conversations().first?.messageCount ?? 0 > 0)
        for device in devices { try await device.close() }
    }

    @Test("ADV-15 the canary scanner finds canaries in every encoding and nothing in ciphertext")
    func canaryScanner() {
        let scanner = CanaryScanner(canaries: ["cloak-canary-xyz"])
        let plain = Array("prefix cloak-canary-xyz suffix".utf8)
        #expect(scanner.scan(plain, location: "utf8").map(\.encoding).contains("utf-8"))
        let utf16 = Array("cloak-canary-xyz".data(using: .utf16LittleEndian)!)
        #expect(!scanner.scan([0, 1] + utf16 + [9], location: "u16").isEmpty)
        for shift in 0..<3 {
            let encoded = Array(Data(Array("ab".utf8).prefix(shift) + Array("cloak-canary-xyz".utf8) + [1, 2, 3])
                .base64EncodedString().utf8)
            #expect(!scanner.scan(encoded, location: "b64").isEmpty, "base64 alignment \(shift)")
        }
        let hex = Array(Hex.encode(Array("cloak-canary-xyz".utf8)).utf8)
        #expect(!scanner.scan(hex, location: "hex").isEmpty)
        let key = SymmetricKey.random()
        let box = XChaCha20Poly1305.seal(plain, key: key, associatedData: [])
        #expect(scanner.scan(box.ciphertext, location: "ciphertext").isEmpty)
    }
}
