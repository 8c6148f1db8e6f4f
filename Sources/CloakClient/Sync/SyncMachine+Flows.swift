import CloakCrypto
import CloakProtocol
import Foundation
import Logging

extension SyncMachine {
    /// Queues a flow and connects if nothing is connected.
    mutating func enqueue(_ flow: any LifecycleFlow, id: FlowID, core: ClientCore, now: UInt64) -> [SyncEffect] {
        switch flow.access {
        case .anonymous where core.account != nil:
            return [.flowFinished(id, .failure(.alreadyInitialized))]
        case .device where core.account == nil:
            return [.flowFinished(id, .failure(.noAccount))]
        case .device where core.removedFromAccount:
            return [.flowFinished(id, .failure(.removedFromAccount))]
        default:
            break
        }
        flows.append(FlowQueue.Entry(id: id, flow: flow))
        if phase == .stopped || phase.isWaiting { return beginConnecting(now: now) }
        return advanceFlows(core: core, now: now)
    }

    /// Starts the next flow when the connection is the session it needs.
    mutating func advanceFlows(core: ClientCore, now: UInt64) -> [SyncEffect] {
        var effects: [SyncEffect] = []
        while let entry = flows.current, !entry.started {
            let ready =
                switch entry.flow.access {
                case .anonymous: phase == .anonymous
                case .device: phase.isDeviceSession
                }
            guard ready else { break }
            var flow = entry.flow
            var output = CoreOutput()
            let step = flow.start(core: core, output: &output)
            flows.updateCurrent {
                $0.flow = flow
                $0.started = true
            }
            effects += surface(output, core: core, now: now)
            effects += perform(step, core: core, now: now)
        }
        return effects
    }

    /// Hands a reply to the running flow.
    mutating func flowReply(_ reply: FlowReply, core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard var flow = flows.current?.flow else { return [] }
        flows.updateCurrent { $0.request = nil }
        var output = CoreOutput()
        let step = flow.handle(reply, core: core, output: &output)
        flows.updateCurrent { $0.flow = flow }
        return surface(output, core: core, now: now) + perform(step, core: core, now: now)
    }

    /// The server answered the running flow's request with an error.
    mutating func flowRefused(_ error: Cloak_V1_Error, core: ClientCore, now: UInt64) -> [SyncEffect] {
        let failure = ProtocolError(wireCode: error.code, message: error.message, retryAfterMs: error.retryAfterMs)
        return retryFlowRequest(after: failure, now: now) ?? flowReply(.error(failure), core: core, now: now)
    }

    /// Sends a flow's request again after the server answered INTERNAL: its own failure
    /// (storage, or another server process changed the account first) that acknowledged
    /// nothing, answered by sending the same bytes later (PROTOCOL.md, error table). Up to three
    /// times per flow, after 250, 500 and 1,000 ms; then the flow sees the error. Before, a
    /// link or removal failed on the first such answer (seen once end to end while linking).
    private mutating func retryFlowRequest(after error: ProtocolError, now: UInt64) -> [SyncEffect]? {
        guard error == .internalError, let entry = flows.current, let sent = entry.sent, entry.internalRetries < 3 else {
            return nil
        }
        flows.updateCurrent {
            $0.request = nil
            $0.resend = sent
            $0.waitUntil = now + (250 << UInt64(entry.internalRetries))
            $0.internalRetries += 1
        }
        return []
    }

    /// Wakes a waiting flow whose time has come.
    mutating func wakeFlow(core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard let wake = flows.wakeAt, wake <= now, var flow = flows.current?.flow else { return [] }
        flows.updateCurrent { $0.waitUntil = nil }
        if let resend = flows.current?.resend {
            flows.updateCurrent { $0.resend = nil }
            return perform(.request(resend), core: core, now: now)
        }
        var output = CoreOutput()
        let step = flow.resume(core: core, output: &output)
        flows.updateCurrent { $0.flow = flow }
        return surface(output, core: core, now: now) + perform(step, core: core, now: now)
    }

    private mutating func perform(_ step: FlowStep, core: ClientCore, now: UInt64) -> [SyncEffect] {
        switch step {
        case .request(let body):
            let (id, effect) = send(body, kind: .flow, now: now)
            flows.updateCurrent {
                $0.request = id
                $0.sent = body
            }
            return [effect]
        case .authenticate(let device, let key):
            flows.updateCurrent { $0.sent = nil }
            guard let hello, let account = core.account ?? flows.current?.flow.authenticationAccount else {
                return finishFlow(.failure(.notConnected), core: core, now: now)
            }
            let (id, effect) = send(.authenticate(Self.authenticate(hello, account: account, device: device, key: key)),
                                    kind: .flow, now: now)
            flows.updateCurrent { $0.request = id }
            return [effect]
        case .fetchLogAsListed(let account):
            flows.updateCurrent { $0.sent = nil }
            guard let hello else { return finishFlow(.failure(.notConnected), core: core, now: now) }
            var fetch = Cloak_V1_FetchDeviceLog()
            fetch.accountID = Data(account.bytes)
            fetch.deviceID = Data(core.me.bytes)
            fetch.signature = Data(
                LogAccessProof.sign(serverNonce: Array(hello.nonce), account: account, device: core.me, key: core.identity.signing))
            let (id, effect) = send(.fetchDeviceLog(fetch), kind: .flow, now: now)
            flows.updateCurrent { $0.request = id }
            return [effect]
        case .wait(let until):
            flows.updateCurrent { $0.waitUntil = until }
            return []
        case .finish(let result):
            return finishFlow(result, core: core, now: now)
        }
    }

    private mutating func finishFlow(_ result: Result<FlowOutcome, ClientError>, core: ClientCore, now: UInt64)
        -> [SyncEffect]
    {
        guard let finished = flows.popCurrent() else { return [] }
        var effects: [SyncEffect] = finished.id.isInternal ? [] : [.flowFinished(finished.id, result)]
        if finished.id.isInternal, case .failure(let error) = result {
            // Refused (e.g. STALE_CUTOFFS whose catch-up could not make the cut-offs agree):
            // tried again after a growing pause, not at every expiry check (once a second, for
            // ever: found by the simulator, seed 131).
            expiryRetries += 1
            let pause = configuration.assistantExpiryCheckMillis << min(expiryRetries, 6)
            expiryCheckAt = max(expiryCheckAt, now + pause)
            core.logger.notice(
                "ending an expired assistant's access failed; retrying later",
                metadata: ["error": "\(error)", "retry_in_ms": "\(pause)"])
        } else if finished.id.isInternal {
            expiryRetries = 0
        }

        // A flow that made this device a member (create, recover) ran on a session that is not
        // this device's: sync needs a new connection, authenticated as the device.
        if phase == .anonymous, core.account != nil {
            return effects + restartConnection(core: core, now: now)
        }
        effects += advanceFlows(core: core, now: now)
        if !needsConnection(core: core) {
            phase = .stopped
            resetConnectionState()
            effects += [.close, .state(.offline(retryAtMillis: nil))]
        }
        return effects
    }

    /// Closes this connection and opens another at once (no backoff: nothing failed).
    mutating func restartConnection(core: ClientCore, now: UInt64) -> [SyncEffect] {
        resetConnectionState()
        guard needsConnection(core: core) else {
            phase = .stopped
            return [.close, .state(.offline(retryAtMillis: nil))]
        }
        return [.close] + beginConnecting(now: now)
    }

    /// An `Authenticate` signing this connection's server nonce.
    static func authenticate(_ hello: Cloak_V1_ServerHello, account: AccountID, device: DeviceID, key: Ed25519PrivateKey)
        -> Cloak_V1_Authenticate
    {
        var authenticate = Cloak_V1_Authenticate()
        authenticate.version = ProtocolVersion.current
        authenticate.accountID = Data(account.bytes)
        authenticate.deviceID = Data(device.bytes)
        authenticate.signature = Data(
            AuthChallenge.sign(serverNonce: Array(hello.nonce), account: account, device: device, key: key))
        return authenticate
    }

    /// Surfaces what a flow's local work produced and follows its requests.
    private mutating func surface(_ output: CoreOutput, core: ClientCore, now: UInt64) -> [SyncEffect] {
        guard !output.changed.isEmpty || !output.events.isEmpty || output.pushOutbox || output.fetchDeviceLog
            || output.fetchKeyEnvelopes || output.pushEnvelopes || output.removed
        else { return [] }
        return follow(output, core: core, now: now)
    }
}

extension LifecycleFlow {
    /// The account a flow authenticates into before this device has one (create, recover).
    var authenticationAccount: AccountID? {
        (self as? any AuthenticatingFlow)?.account
    }
}

/// A flow that authenticates into an account this device does not belong to yet.
protocol AuthenticatingFlow: LifecycleFlow {
    var account: AccountID? { get }
}
