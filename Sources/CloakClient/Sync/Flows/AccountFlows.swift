import CloakCrypto
import CloakProtocol
import Foundation
import Logging
import SwiftProtobuf

/// Creates a new account with this device as its only member: `Register(genesis)` (a retried
/// register of our own genesis answers ACCOUNT_EXISTS and counts as done), authenticate as
/// this device, store the epoch-1 envelope on the server, then keep the account.
struct CreateAccountFlow: AuthenticatingFlow {
    private enum Stage { case register, authenticate, envelope }

    private var prepared: PreparedAccount?
    private var stage = Stage.register
    var access: FlowAccess { .anonymous }
    var account: AccountID? { prepared?.log.account }

    mutating func start(core: ClientCore, output: inout CoreOutput) -> FlowStep {
        do { prepared = try core.prepareAccount() } catch { return .finish(.failure(error)) }
        guard let prepared else { return .finish(.failure(.noAccount)) }
        stage = .register
        return .request(.register(.with { $0.genesis = Data(prepared.genesis.wire) }))
    }

    mutating func handle(_ reply: FlowReply, core: ClientCore, output: inout CoreOutput) -> FlowStep {
        guard let prepared else { return .finish(.failure(.noAccount)) }
        switch (stage, reply) {
        case (.register, .body(.done)), (.register, .error(.accountExists)):
            stage = .authenticate
            return .authenticate(core.me, core.identity.signing)
        case (.authenticate, .body(.authResult)):
            stage = .envelope
            return .request(.putKeyEnvelopes(.with { $0.envelopes = [prepared.envelope.message] }))
        case (.envelope, .body(.done)):
            do { try core.adopt(log: prepared.log, keys: [1: prepared.key]) } catch { return .finish(.failure(error)) }
            core.logger.info("account created", metadata: ["account": "\(prepared.log.account)"])
            return .finish(.success(.completed))
        default:
            return LogAppend.fail(reply, "a reply to \(stage)")
        }
    }
}
