import ArgumentParser
import CloakAgent
import CloakClient
import CloakCrypto
import CloakProtocol
import CloakTransport
import Foundation
import Logging

/// `cloak-agent`: an AI assistant as a scoped, revocable member of the conversations it serves
/// (PROTOCOL.md §29). `init` prints its invitation; a person grants it from a device
/// (`cloak assistant grant`); `serve` answers in the granted conversations, streaming the
/// model's reply token by token.
@main
struct CloakAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-agent",
        abstract: "An AI assistant that answers in the Cloak conversations a person grants it.",
        discussion: """
            Example:
              cloak-agent init --dir ./agent                 # prints cloak-assistant1:…
              cloak assistant grant --dir ./phone cloak-assistant1:… --conversation <id> --days 7
              cloak-agent serve --dir ./agent --server ws://127.0.0.1:8080/v1/sync --account <id> --model scripted
            An HTTP model speaks the chat-completions streaming format:
              CLOAK_AGENT_API_KEY=… cloak-agent serve … --model http --endpoint https://host/v1/chat/completions \\
                --model-name small
            Exit codes: 0 stopped, 1 usage or local error, 2 server or network, 3 access ended.
            """,
        subcommands: [Init.self, Serve.self]
    )
}

/// Options both commands take.
struct AgentOptions: ParsableArguments {
    @Option(name: .long, help: "The assistant's state directory: its keys and its copy of the conversations (env CLOAK_AGENT_DIR).")
    var dir: String = ProcessInfo.processInfo.environment["CLOAK_AGENT_DIR"] ?? "./cloak-agent"

    @Option(name: .long, help: "Sync server WebSocket URL (env CLOAK_SERVER).")
    var server: String = ProcessInfo.processInfo.environment["CLOAK_SERVER"] ?? "ws://127.0.0.1:8080/v1/sync"

    @Flag(name: .long, help: "Log sync details to stderr (ids and timings only, never content).")
    var verbose = false

    func open(logger: Logger) throws -> CloakClient {
        guard let url = URL(string: server), url.scheme == "ws" || url.scheme == "wss" else {
            throw ValidationError("--server must be a ws:// or wss:// URL")
        }
        return try CloakClient.open(
            directory: URL(fileURLWithPath: dir), server: url, transport: WebSocketTransport(logger: logger), logger: logger)
    }

    var logger: Logger {
        var logger = Logger(label: "cloak-agent")
        logger.logLevel = verbose ? .debug : .info
        return logger
    }
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the assistant's keys (once) and print its invitation for a person to grant.")
    @OptionGroup var options: AgentOptions

    func run() async throws {
        let client: CloakClient
        do { client = try options.open(logger: options.logger) } catch { fail(error) }
        let invitation = await client.assistantInvitation()
        print(invitation.text)
        FileHandle.standardError.write(Data("""
            cloak-agent: assistant \(invitation.id.hex). On a device of the account, run
              cloak assistant grant \(invitation.text) --conversation <id> --days 7
            then start `cloak-agent serve --account <account id>`.

            """.utf8))
        try? await client.close()
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer new questions in the conversations granted to this assistant, until stopped or revoked.")
    @OptionGroup var options: AgentOptions

    @Option(name: .long, help: "The account that granted this assistant (64 hex digits; remembered once joined).")
    var account: String?

    @Option(name: .long, help: "The model: `scripted` (built in) or `http` (chat-completions streaming).")
    var model: String = "scripted"

    @Option(name: .long, help: "HTTP model endpoint URL (env CLOAK_AGENT_ENDPOINT).")
    var endpoint: String?

    @Option(name: .long, help: "Model name sent to the endpoint (env CLOAK_AGENT_MODEL).")
    var modelName: String = ProcessInfo.processInfo.environment["CLOAK_AGENT_MODEL"] ?? "default"

    @Option(name: .long, help: "HTTP model key (prefer env CLOAK_AGENT_API_KEY: a flag shows in the process list).")
    var apiKey: String?

    @Option(name: .long, help: "A system prompt sent before the conversation.")
    var systemPrompt: String?

    @Option(name: .long, help: "Most messages of the conversation sent to the model.")
    var maxContextMessages: Int = 40

    @Option(name: .long, help: "Seconds to wait for the model's first token (and between tokens: half of it).")
    var timeout: UInt64 = 60

    @Option(name: .long, help: "Pause between the scripted model's tokens, in milliseconds.")
    var scriptedDelay: Int = 15

    func run() async throws {
        let logger = options.logger
        let client: CloakClient
        do { client = try options.open(logger: logger) } catch { fail(error) }
        var accountID = await client.accountID
        if accountID == nil, let account {
            guard let bytes = try? Hex.decode(account), let id = try? AccountID(validating: bytes, field: "account") else {
                throw ValidationError("--account is the 64 hex digits `cloak init` printed")
            }
            accountID = id
        }
        guard accountID != nil else { throw ValidationError("give --account: the account that granted this assistant") }
        let chatModel = try makeModel()
        let invitation = await client.assistantInvitation()
        var configuration = AgentConfiguration(address: invitation.id.hex, systemPrompt: systemPrompt)
        configuration.maxContextMessages = maxContextMessages
        configuration.firstTokenTimeoutMillis = timeout * 1000
        configuration.idleTimeoutMillis = max(5, timeout / 2) * 1000
        let service = AgentService(client: client, model: chatModel, configuration: configuration, logger: logger)
        FileHandle.standardError.write(Data("cloak-agent: assistant \(invitation.id.hex) serving with the \(model) model\n".utf8))
        do {
            let reason = try await service.run(account: accountID)
            FileHandle.standardError.write(Data("cloak-agent: \(reason)\n".utf8))
            try? await client.close()
            throw ExitCode(3)
        } catch let error as ClientError {
            try? await client.close()
            fail(error)
        }
    }

    private func makeModel() throws -> any ChatModel {
        switch model {
        case "scripted":
            return ScriptedChatModel(tokenDelay: .milliseconds(scriptedDelay))
        case "http":
            guard let endpoint = endpoint ?? ProcessInfo.processInfo.environment["CLOAK_AGENT_ENDPOINT"],
                let url = URL(string: endpoint), url.scheme == "http" || url.scheme == "https"
            else {
                throw ValidationError("--model http needs --endpoint (or CLOAK_AGENT_ENDPOINT) with an http(s) URL")
            }
            let key = apiKey ?? ProcessInfo.processInfo.environment["CLOAK_AGENT_API_KEY"]
            return HTTPChatModel(endpoint: url, model: modelName, apiKey: key)
        default:
            throw ValidationError("--model is `scripted` or `http`")
        }
    }
}

func fail(_ error: any Error) -> Never {
    let (message, code): (String, Int32) =
        switch error {
        case ClientError.notConnected, ClientError.timeout: ("cannot reach the server", 2)
        case ClientError.server(let reason): ("the server refused: \(reason.message)", 2)
        case ClientError.removedFromAccount: ("this assistant's access to the account ended", 3)
        case ClientError.deviceLog(let reason): ("the server's device log was refused: \(reason)", 3)
        case ClientError.storage(let why): ("the local store failed: \(why)", 1)
        case ClientError.noAccount: ("give --account: the account that granted this assistant", 1)
        default: ("\(error)", 1)
        }
    FileHandle.standardError.write(Data("cloak-agent: \(message)\n".utf8))
    exit(code)
}
