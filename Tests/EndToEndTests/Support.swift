import CloakClient
import CloakCrypto
import CloakProtocol
import CloakServer
import CloakServerHTTP
import CloakTransport
import Foundation
import Logging
import Testing

/// Runs `body` against a real server on a free loopback port (SQLite in `directory` when given,
/// otherwise in memory), then shuts it down.
func withServer<T: Sendable>(
    sqliteAt directory: URL? = nil, sync: ServerConfiguration = ServerConfiguration(),
    _ body: @Sendable (RunningServer) async throws -> T
) async throws -> T {
    let store: any ServerStore
    if let directory {
        let sqlite = try SQLiteServerStore(path: directory.appendingPathComponent("server.sqlite").path)
        try await sqlite.migrate()
        store = sqlite
    } else {
        store = InMemoryServerStore()
    }
    var logger = Logger(label: "e2e.server")
    logger.logLevel = .error
    return try await CloakHTTPServer.withRunning(configuration: .init(port: 0, sync: sync), store: store, logger: logger, body)
}

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("cloak-e2e-\(name)-\(UInt64.random(in: 0..<UInt64.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Opens a client stored in `directory` against `server`.
func openClient(_ directory: URL, _ server: RunningServer, configuration: ClientConfiguration = fastConfiguration)
    throws -> CloakClient
{
    var logger = Logger(label: "e2e.client")
    logger.logLevel = .error
    return try CloakClient.open(
        directory: directory, server: URL(string: server.syncURL)!, transport: WebSocketTransport(),
        configuration: configuration, logger: logger)
}

/// Quick reconnects and short batching so tests finish fast.
let fastConfiguration: ClientConfiguration = {
    var configuration = ClientConfiguration()
    configuration.reconnectMinMillis = 50
    configuration.reconnectMaxMillis = 500
    configuration.streamBatchMillis = 20
    configuration.snapshotEvery = 300
    return configuration
}()

/// Links `newDevice` into `existing`'s account through the server's pairing mailboxes, checking
/// that both devices show the same short authentication string; both users say `yes` (or not).
func link(_ newDevice: CloakClient, to existing: CloakClient, newSays: Bool = true, existingSays: Bool = true)
    async throws
{
    let invitation = try await newDevice.beginLink()
    async let pending = newDevice.awaitLink(invitation, pollMillis: 50)
    let offer = try await existing.acceptLink(invitation.text)
    let link = try await pending
    #expect(link.shortAuthenticationString == offer.shortAuthenticationString)
    #expect(offer.shortAuthenticationString.count == 6)
    async let joined: Void = newDevice.confirmLink(link, codesMatch: newSays, pollMillis: 50)
    do { try await existing.completeLink(offer, codesMatch: existingSays, pollMillis: 50) } catch {
        _ = try? await joined  // both sides finish before the caller looks
        throw error
    }
    try await joined
}

/// Waits (bounded) until `condition` holds.
func eventually(timeout: Duration = .seconds(30), _ what: String, _ condition: () async throws -> Bool)
    async throws
{
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for: \(what)")
    throw CancellationError()
}

/// Waits until every client has the same state hash for every conversation.
func converged(_ clients: [CloakClient], _ conversations: [ConversationID]) async -> Bool {
    for conversation in conversations {
        var hashes = Set<[UInt8]>()
        for client in clients {
            guard let hash = await client.stateHash(of: conversation) else { return false }
            hashes.insert(hash)
        }
        if hashes.count != 1 { return false }
    }
    return true
}

/// Two devices of a new account (stores under `root/a` and `root/b`), linked and syncing.
func syncingPair(_ root: URL, _ server: RunningServer) async throws -> (CloakClient, CloakClient) {
    let a = try openClient(root.appendingPathComponent("a"), server)
    let b = try openClient(root.appendingPathComponent("b"), server)
    try await a.createAccount()
    try await link(b, to: a)
    await a.startSync()
    await b.startSync()
    return (a, b)
}
