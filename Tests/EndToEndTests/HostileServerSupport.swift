import CloakCRDT
import CloakProtocol
import CloakServerHTTP
import CloakTransport
import Foundation
import Logging
import Synchronization
import Testing

@_spi(Simulation) @testable import CloakClient

/// Shared pieces of the hostile-server tests over real WebSockets: a device whose every frame
/// from the real server passes through a hostile rule (``TamperingTransport``), and the frame
/// surgery those rules do.
enum Hostile {
    /// `fastConfiguration` with a short `withheld_after`, so withholding is reported (and asked
    /// about again) within a second rather than a minute. The short ping interval matters as
    /// much: the review of what is missing runs on the driver's tick, and no wake time is set
    /// for it, so over a real connection it runs when something else wakes the driver — with
    /// the default 15 s pings, a withheld change set is reported up to two pings late.
    static let configuration: ClientConfiguration = {
        var configuration = fastConfiguration
        configuration.withheldAfterMillis = 600
        configuration.pingIntervalMillis = 200
        return configuration
    }()

    /// Opens the client stored in `directory` with every frame it receives passed through `rule`.
    static func client(
        _ directory: URL, _ server: RunningServer, _ rule: @escaping @Sendable (Cloak_V1_Frame) -> [Cloak_V1_Frame]
    ) throws -> CloakClient {
        try open(directory, server, TamperingTransport(inner: WebSocketTransport(), tamper: rule))
    }

    /// Opens the client stored in `directory` on the honest transport, with the same configuration.
    static func honest(_ directory: URL, _ server: RunningServer) throws -> CloakClient {
        try open(directory, server, WebSocketTransport())
    }

    private static func open(_ directory: URL, _ server: RunningServer, _ transport: any SyncTransport) throws
        -> CloakClient
    {
        var logger = Logger(label: "e2e.hostile")
        logger.logLevel = .error
        return try CloakClient.open(
            directory: directory, server: URL(string: server.syncURL)!, transport: transport, configuration: configuration,
            logger: logger)
    }

    /// The frame with its delivered change sets replaced by `transform(items)` (other frames unchanged).
    static func deliveries(
        _ frame: Cloak_V1_Frame, _ transform: ([Cloak_V1_StoredChangeSet]) -> [Cloak_V1_StoredChangeSet]
    ) -> Cloak_V1_Frame {
        guard case .deliver(var deliver) = frame.body else { return frame }
        deliver.items = transform(deliver.items)
        var out = frame
        out.body = .deliver(deliver)
        return out
    }

    /// The header of a delivered change set, if it parses.
    static func header(_ item: Cloak_V1_StoredChangeSet) -> ChangeSetHeader? {
        (try? ChangeSet(wire: Array(item.changeSet)))?.header
    }

    /// Texts `client` renders in `chat`.
    static func texts(_ client: CloakClient, _ chat: ConversationID) async -> [String] {
        await client.conversation(chat)?.messages.map(\.text) ?? []
    }

    /// Appends `text` and waits until the server acknowledged it: the next append is sealed into
    /// a change set of its own, which a rule can then single out.
    static func write(_ text: String, by client: CloakClient, in chat: ConversationID) async throws {
        _ = try await client.appendMessage(to: chat, role: .user, text: text)
        try await eventually("\(text) acknowledged") { await client.syncStatus().isSynced }
    }

    /// Security events `client` recorded of `kind`.
    static func events(_ client: CloakClient, _ kind: SecurityEvent.Kind) async throws -> [SecurityEvent] {
        try await client.recordedSecurityEvents().filter { $0.kind == kind }
    }
}

/// One chain a hostile rule singles out: an author's change sets in one conversation.
final class Victim: Sendable {
    private let chain = Mutex<(author: DeviceID, conversation: ConversationID)?>(nil)

    /// Starts singling out `author`'s chain in `conversation`.
    func set(_ author: DeviceID, _ conversation: ConversationID) { chain.withLock { $0 = (author, conversation) } }

    /// Whether `header` belongs to the chain (false before one is set).
    func matches(_ header: ChangeSetHeader?) -> Bool {
        guard let header, let chain = chain.withLock({ $0 }) else { return false }
        return header.author == chain.author && header.conversation == chain.conversation
    }
}

extension CloakClient {
    /// Seals what is waiting in the batches now, if this device may seal at all (one that
    /// never connects seals only on its next connection), and returns its outbox: what it
    /// would push.
    func _sealAndPeekOutbox() throws -> [ChangeSet] {
        _ = try engine.core.flushDueBatches(force: true)
        return try engine.core.outboxChangeSets(limit: 1_000)
    }
}
