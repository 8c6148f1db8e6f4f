import CloakProtocol
import Foundation

extension ServerConnection {
    /// What an assistant session may ask (PROTOCOL.md §29 "Server routing"): to read and write
    /// the conversations of its scope while its grant lasts, and nothing else. The clients'
    /// checks are the ones that count (a server that skips these shows an assistant nothing it
    /// can decrypt and gets nothing of it accepted); these keep an honest server from routing
    /// what an assistant must not see, and refuse early what every device would refuse.
    func checkAssistantRequest(_ frame: Cloak_V1_Frame, _ context: RequestContext) throws(Failure) {
        guard let assistant = context.log.assistants[context.session.device], assistant.endedAt == nil else {
            throw .connection(.deviceNotActive)
        }
        let terms = assistant.current
        guard context.nowMs < terms.expiresAtMs else { throw .connection(.grantExpired) }
        func inScope(_ ids: [Data], _ what: String) throws(Failure) {
            for id in ids {
                guard let conversation = try? ConversationID(validating: id, field: "conversation_ids") else { continue }
                guard terms.covers(conversation) else {
                    throw .request(.outOfScope("\(what) names conversation \(conversation)"))
                }
            }
        }
        switch frame.body {
        case .subscribe(let request): try inScope(request.conversationIds, "Subscribe")
        case .fetchSnapshots(let request): try inScope(request.conversationIds, "FetchSnapshots")
        case .fetchChangeSets(let request): try inScope([request.conversationID], "FetchChangeSets")
        case .push, .fetchKeyEnvelopes, .ackCursor: break
        default: throw .request(.notPermitted(frame.body?.name ?? "this request"))
        }
    }

    /// An assistant's scope, as the filter of a Subscribe or FetchSnapshots that names none.
    func assistantScope(_ context: RequestContext) -> [ConversationID]? {
        guard context.session.isAssistant, let assistant = context.log.assistants[context.session.device] else { return nil }
        return assistant.current.scope
    }
}
