import CloakAgent
@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol

/// An AI assistant of one account in a deterministic run (PROTOCOL.md §29): its own real client
/// engine, opened as an assistant over its own simulated store, on the simulated network like a
/// device (a ``SimDevice`` that never becomes a member), deciding what to answer with
/// `cloak-agent`'s own core (``AgentCore``) and a scripted model whose tokens arrive over
/// virtual time.
///
/// A hostile one is a modified client (its own checks off, a leaked key) whose change sets a
/// colluding server hands to the account's devices: every device must refuse them.
final class SimAssistant {
    /// A reply it streamed: every device must show it, with this text, while it can read there.
    struct Reply {
        let conversation: ConversationID
        var text = ""
        var finished = false
    }

    /// What a hostile assistant tries.
    enum Attack: String, CaseIterable {
        case outOfScope = "out of scope"
        case asUser = "as user"
        case afterExpiry = "after expiry"

        /// The alarms a device may raise for it. After expiry, a device that has already ended
        /// the grant (reason `expired`) refuses it as past the assistant's cut-off instead.
        var alarms: Set<SecurityEvent.Kind> {
            switch self {
            case .outOfScope: [.assistantOutOfScope]
            case .asUser: [.assistantNotPermitted]
            case .afterExpiry: [.assistantExpired, .beyondRemovalCutoff, .authorNotActive]
            }
        }
    }

    /// One change set a hostile assistant wrote and the server handed to `receivers`.
    struct HostileWrite {
        let attack: Attack
        let conversation: ConversationID
        let message: MessageID
        /// Device indices that processed it.
        let receivers: [Int]
        /// Those that held it for a log entry they lacked (judged when it arrived).
        let held: Set<Int>
    }

    /// Its client (status `.fresh` for ever: it is no device of the account).
    let client: SimDevice
    let account: Int
    let id: DeviceID
    let hostile: Bool
    var agent: AgentCore
    var joined = false
    /// Its log forked where a restored server lost an entry it holds (``SimWorld/noteForkAfterRestore(_:_:)``).
    var forkedByRestore = false
    var joinAttempts = 0
    /// The conversations it was ever granted, or a grant was started for (what it may ever
    /// have read).
    var everScope: Set<ConversationID> = []
    /// Its scope as the log stood after the simulator's last grant, widening or restriction of
    /// it (where users ask it things).
    var scope: [ConversationID] = []
    var expiresAt: UInt64 = 0
    /// Its agent polls (stops once the grant ends or expires; a later expiry restarts it).
    var polling = false
    /// A device revoked it (the workload's doing, not its expiry).
    var revoked = false
    var replies: [MessageID: Reply] = [:]
    var replyOrder: [MessageID] = []
    var streaming: [ReplyID: MessageID] = [:]
    var hostileWrites: [HostileWrite] = []

    init(client: SimDevice, id: DeviceID, hostile: Bool) {
        self.client = client
        account = client.account
        self.id = id
        self.hostile = hostile
        agent = AgentCore(configuration: AgentConfiguration(address: id.bytes.map { String($0, radix: 16) }.joined()))
    }

    /// The agent's view of one conversation of its client, as `cloak-agent` builds it.
    static func snapshot(_ view: ConversationView) -> AgentConversation {
        AgentConversation(
            id: view.id, messages: view.messages.map { .init(id: $0.id, role: $0.role, text: $0.text) },
            addressedTo: view.metadata.model)
    }
}
