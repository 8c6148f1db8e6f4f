@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol

/// What a run recorded for its checks: every operation an API call accepted, the canaries it
/// wrote, removals, faults injected and alarms expected, and every failed check.
struct SimNotes {
    /// A message some device created through the API (the durability check looks for it).
    struct Message {
        let account: Int
        let conversation: ConversationID
        let id: MessageID
        let author: Int
        let createdAt: UInt64
        /// The API call that created it.
        var kind = ""
        /// The text every device must show, while nothing edited or deleted it.
        var text: String
        var edited = false
        var deleted = false
        /// The message it answers, as its writer saw it (nil: a first message).
        var parent: MessageID?
    }

    var failures: [(check: String, detail: String)] = []
    var messages: [MessageID: Message] = [:]
    var messageOrder: [MessageID] = []
    var canaries: [String] = []
    var faults: [String: Int] = [:]
    /// Hostile actions whose alarm the receiving device raised, by policy.
    var detections: [String: Int] = [:]
    var flowFailures: [String: Int] = [:]
    var operations: [String: Int] = [:]
    var linked = 0
    var removed = 0
    var recovered = 0
    /// Devices that raised a device-log fork a restore caused (see `SimWorld.noteForkAfterRestore`).
    var forkedByRestore = 0
    /// Every nonce of every change set pushed (ADV-14: none may repeat).
    var nonces: Set<[UInt8]> = []
    var changeSetsSeen = 0

    mutating func fail(_ check: String, _ detail: String) {
        failures.append((check, detail))
    }

    mutating func flowFailed(_ flow: String, _ device: String, _ result: Result<FlowOutcome, ClientError>) {
        let reason: String =
            switch result {
            case .failure(let error): "\(error)"
            case .success(let outcome): "unexpected \(outcome)"
            }
        flowFailures["\(flow): \(reason)", default: 0] += 1
    }

    mutating func recordMessage(_ message: Message) {
        if messages[message.id] == nil { messageOrder.append(message.id) }
        messages[message.id] = message
    }

    mutating func count(_ operation: String) { operations[operation, default: 0] += 1 }
}
