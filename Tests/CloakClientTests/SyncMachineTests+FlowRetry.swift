import CloakProtocol
import Foundation
import Testing

@_spi(Simulation) @testable import CloakClient

extension SyncMachineTests {
    /// INTERNAL is the server's own failure (storage, or another server process changed the
    /// account first): nothing was acknowledged and the same bytes may be sent again. A flow's
    /// request goes again after a pause instead of failing the flow (a link once failed this
    /// way end to end); a server that keeps failing ends the flow with the error after three
    /// retries.
    @Test("a flow's request answered INTERNAL is sent again, the same bytes, and the flow completes")
    func flowRequestRetriedAfterInternal() throws {
        let (core, machine, request) = try startedFlow()
        var live = machine
        #expect(sent(live.handle(.frame(FrameCodec.encodeError(.internalError, requestID: request.requestID)), core: core)).isEmpty)
        #expect(live.handle(.tick, core: core).isEmpty, "not before the pause")
        clock.advance(250)
        let again = try #require(sent(live.handle(.tick, core: core)).first)
        #expect(again.body == request.body)
        #expect(again.requestID != request.requestID)
        let done = live.handle(.frame(FrameCodec.encode(.done(Cloak_V1_Done()), requestID: again.requestID)), core: core)
        #expect(done.contains { if case .flowFinished(_, .success) = $0 { true } else { false } })
    }

    @Test("a server that keeps answering INTERNAL ends the flow with the error after three retries")
    func flowFailsAfterRepeatedInternal() throws {
        var (core, machine, request) = try startedFlow()
        var finished: [SyncEffect] = []
        for retry in 0..<4 {
            finished = machine.handle(.frame(FrameCodec.encodeError(.internalError, requestID: request.requestID)), core: core)
            guard retry < 3 else { break }
            clock.advance(250 << UInt64(retry))
            request = try #require(sent(machine.handle(.tick, core: core)).first, "retry \(retry + 1)")
        }
        #expect(finished.contains { if case .flowFinished(_, .failure(.server(.internalError))) = $0 { true } else { false } })
    }

    /// A live machine running a one-request flow, and the request it sent.
    private func startedFlow() throws -> (ClientCore, SyncMachine, Cloak_V1_Frame) {
        let core = try core()
        var machine = SyncMachine(configuration: ClientConfiguration())
        _ = machine.handle(.start, core: core)
        _ = machine.handle(.connected, core: core)
        let auth = sent(machine.handle(.frame(hello()), core: core))
        _ = machine.handle(.frame(FrameCodec.encode(.authResult(Cloak_V1_AuthResult()), requestID: auth[0].requestID)), core: core)
        let flow = SimpleRequestFlow(.resetRecoveryLockout(Cloak_V1_ResetRecoveryLockout()))
        let request = try #require(
            sent(machine.handle(.startFlow(FlowID(value: 1), flow), core: core)).first { $0.body?.name == "reset_recovery_lockout" })
        return (core, machine, request)
    }
}
