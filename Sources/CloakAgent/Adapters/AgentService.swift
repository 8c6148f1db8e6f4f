public import CloakClient
import CloakCRDT
public import CloakProtocol
import Foundation
public import Logging

/// The async driver of ``AgentCore`` (`cloak-agent serve`): it joins the account that granted
/// this assistant, keeps its Cloak client syncing, turns every change of a conversation of its
/// scope into an ``AgentEvent``, runs the model requests the core asks for, streams their
/// tokens into the reply through the client, and ticks the core's deadlines. Effects are
/// performed one at a time, in order, so the pieces of a reply reach the conversation in the
/// order the model produced them.
///
/// ```swift
/// let service = AgentService(client: client, model: ScriptedChatModel(), configuration: .init(address: id.hex))
/// try await service.run(account: account)      // until cancelled or revoked
/// ```
///
/// Logs carry ids, counts and timings — never message text, prompts or the model's key.
public actor AgentService {
    let client: CloakClient
    let model: any ChatModel
    var core: AgentCore
    let logger: Logger
    private var models: [ReplyID: Task<Void, Never>] = [:]
    private var queue: [AgentEffect] = []
    private var draining = false
    private let started = ContinuousClock.now
    /// When each reply's first token reached the client (for ``firstTokenMillis``).
    private var firstTokens: [ReplyID: UInt64] = [:]
    private var requestedAt: [ReplyID: UInt64] = [:]
    /// Milliseconds from asking the model to its first token having been handed to the client,
    /// per finished reply, newest last (measurements, bounded).
    public private(set) var firstTokenMillis: [UInt64] = []

    /// A service over an assistant's client (opened, not necessarily joined yet).
    public init(client: CloakClient, model: any ChatModel, configuration: AgentConfiguration, logger: Logger) {
        self.client = client
        self.model = model
        core = AgentCore(configuration: configuration)
        self.logger = logger
    }

    /// Joins `account` (waiting, retrying every `retry`, until a device has granted this
    /// assistant), then serves until the task is cancelled or the grant ends. Returns why it
    /// stopped.
    public func run(account: AccountID?, retry: Duration = .seconds(2)) async throws -> String {
        try await join(account, retry: retry)
        await client.startSync()
        let changes = await client.changes()
        let states = await client.connectionStates()
        let ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                await self?.tick()
            }
        }
        defer { ticker.cancel() }
        for id in await client.knownConversations() { await notice(id) }
        return await withTaskGroup(of: String?.self) { group in
            group.addTask {
                for await changed in changes {
                    for id in changed.sorted() { await self.notice(id) }
                }
                return nil
            }
            group.addTask {
                for await state in states {
                    if case .refused(let reason) = state { return "the server refused this assistant: \(reason)" }
                }
                return nil
            }
            let reason = await group.next() ?? nil
            group.cancelAll()
            for task in models.values { task.cancel() }
            return reason ?? "stopped"
        }
    }

    private func join(_ account: AccountID?, retry: Duration) async throws {
        guard await client.accountID == nil else { return }
        guard let account else { throw ClientError.noAccount }
        var announced = false
        while true {
            try Task.checkCancellation()
            do {
                try await client.joinAsAssistant(account: account)
                logger.info("joined the account as its assistant", metadata: ["account": "\(account)"])
                return
            } catch .assistantNotGranted {
                if !announced {
                    logger.notice("no device has granted this assistant yet; waiting", metadata: ["account": "\(account)"])
                    announced = true
                }
            } catch .notConnected, .timeout {
                logger.notice("cannot reach the server yet; retrying")
            }
            try await Task.sleep(for: retry)
        }
    }

    /// Milliseconds since the service started (the core only compares them).
    private var now: UInt64 {
        let elapsed = ContinuousClock.now - started
        return UInt64(elapsed.components.seconds) * 1000 + UInt64(elapsed.components.attoseconds / 1_000_000_000_000_000)
    }

    func notice(_ id: ConversationID) async {
        guard let view = await client.conversation(id) else { return }
        let conversation = AgentConversation(
            id: id, messages: view.messages.map { .init(id: $0.id, role: $0.role, text: $0.text) },
            addressedTo: view.metadata.model)
        await handle(.conversation(conversation))
    }

    func tick() async {
        guard let deadline = core.nextDeadline, deadline <= now else { return }
        await handle(.tick)
    }

    func handle(_ event: AgentEvent) async {
        if case .modelToken(let id, _) = event, firstTokens[id] == nil, let asked = requestedAt[id] {
            firstTokens[id] = now - asked
        }
        queue += core.handle(event, now: now)
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while !queue.isEmpty {
            let effect = queue.removeFirst()
            await perform(effect)
        }
    }

    private func perform(_ effect: AgentEffect) async {
        switch effect {
        case .beginReply(let id, let conversation, let parent):
            do {
                let message = try await client.beginMessage(in: conversation, parent: parent, role: .assistant)
                queue += core.handle(.replyStarted(id, message), now: now)
            } catch {
                queue += core.handle(.writeFailed(id, Self.describe(error)), now: now)
            }
        case .startModel(let id, let context):
            requestedAt[id] = now
            let stream = model.reply(to: context)
            models[id] = Task { [weak self] in
                do {
                    for try await token in stream { await self?.handle(.modelToken(id, token)) }
                    await self?.handle(.modelFinished(id))
                } catch is CancellationError {
                    return
                } catch {
                    await self?.handle(.modelFailed(id, error as? ModelFailure ?? .unreachable))
                }
            }
        case .cancelModel(let id):
            models.removeValue(forKey: id)?.cancel()
        case .appendText(let id, let conversation, let message, let text):
            do { try await client.streamText(text, into: message, in: conversation) } catch {
                queue += core.handle(.writeFailed(id, Self.describe(error)), now: now)
            }
        case .finishReply(let id, let conversation):
            models.removeValue(forKey: id)
            requestedAt[id] = nil
            if let first = firstTokens.removeValue(forKey: id) {
                firstTokenMillis.append(first)
                if firstTokenMillis.count > 1000 { firstTokenMillis.removeFirst() }
                // A timing an operator can watch (scripts/run prints it); never the text.
                logger.info("\(id): reply finished, first token after \(first) ms")
            }
            do { try await client.finishStreaming(in: conversation) } catch {
                logger.warning("could not seal the end of a reply", metadata: ["reply": "\(id)", "error": "\(Self.describe(error))"])
            }
        case .log(let line):
            logger.info("\(line)")
        }
    }

    /// A client error as a phrase without content.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? ClientError else { return "\(type(of: error))" }
        switch error {
        case .notPermitted(let why): return why
        case .unknownConversation: return "the conversation is not known here"
        case .removedFromAccount: return "the assistant's access ended"
        case .storage: return "the local store failed"
        default: return "\(error)"
        }
    }
}
