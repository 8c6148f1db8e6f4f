@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol
import CloakTransport
import Foundation
import Logging

/// One live device: a real ``CloakClient`` with its own store directory, talking WebSocket to
/// one of the servers.
final class LiveDevice: Sendable {
    /// Its index among every device of the run.
    let index: Int
    let account: Int
    /// "a3.d1": account 3, device 1 (device 0 created the account).
    let name: String
    let directory: URL
    let server: URL
    let client: CloakClient

    init(index: Int, account: Int, name: String, directory: URL, server: URL, client: CloakClient) {
        self.index = index
        self.account = account
        self.name = name
        self.directory = directory
        self.server = server
        self.client = client
    }
}

/// Why a live run could not start or finish.
public struct LiveError: Error, CustomStringConvertible {
    /// A sentence: what failed and what to do.
    public let description: String

    init(_ description: String) { self.description = description }
}

/// Opens every device, creates the accounts and links their devices through the real flows
/// (the server's pairing mailbox and the short authentication string), as an app would.
struct LiveFleet {
    let options: LiveOptions
    let root: URL
    let recorder: LiveRecorder

    /// Every account's devices (device 0 of each created its account), set up `setupParallelism`
    /// accounts at a time; `progress` is told each account that is ready.
    ///
    /// The first account is set up alone: the first WebSocket connections instantiate the
    /// transport's generic type metadata, and two NIO threads doing that at once crashed the
    /// Swift 6.3 runtime (a null dereference in `swift_checkMetadataState` while another thread
    /// ran `swift_initEnumMetadataMultiPayload` for `HTTPPart`), seen once in a 10 × 3 run.
    func setUp(progress: @escaping @Sendable (Int) -> Void) async throws -> [[LiveDevice]] {
        let accounts = options.accounts
        let parallelism = max(1, options.setupParallelism)
        var ready: [Int: [LiveDevice]] = [0: try await setUpAccount(0)]
        progress(ready.count)
        try await withThrowingTaskGroup(of: (Int, [LiveDevice]).self) { group in
            var next = 1
            func startNext() {
                guard next < accounts else { return }
                let account = next
                next += 1
                group.addTask { (account, try await setUpAccount(account)) }
            }
            for _ in 0..<parallelism { startNext() }
            while let (account, devices) = try await group.next() {
                ready[account] = devices
                progress(ready.count)
                startNext()
            }
        }
        return (0..<accounts).map { ready[$0] ?? [] }
    }

    private func setUpAccount(_ account: Int) async throws -> [LiveDevice] {
        var devices: [LiveDevice] = []
        do {
            for slot in 0..<options.devices { devices.append(try open(account: account, slot: slot)) }
            guard let first = devices.first else { return [] }
            do throws(ClientError) { try await first.client.createAccount() } catch {
                throw LiveError("the server refused to create account \(account) (\(LiveErrorCode.name(of: error))): "
                    + Self.advice(error))
            }
            for device in devices.dropFirst() {
                do { try await link(device.client, to: first.client) } catch let error as ClientError {
                    throw LiveError("linking \(device.name) to account \(account) failed (\(LiveErrorCode.name(of: error))): "
                        + Self.advice(error))
                }
            }
        } catch {
            for device in devices { try? await device.client.close() }
            throw error
        }
        return devices
    }

    private func open(account: Int, slot: Int) throws -> LiveDevice {
        let index = account * options.devices + slot
        let name = "a\(account).d\(slot)"
        let directory = root.appendingPathComponent(name)
        let server = options.server(forDevice: index)
        let logger = LiveLogHandler.logger(recorder, label: "live.\(name)")
        var configuration = ClientConfiguration()
        configuration.reconnectMinMillis = 100
        configuration.reconnectMaxMillis = 2_000
        let client = try CloakClient.open(
            directory: directory, server: server, transport: WebSocketTransport(logger: logger), configuration: configuration,
            logger: logger)
        return LiveDevice(index: index, account: account, name: name, directory: directory, server: server, client: client)
    }

    /// Links `device` to `existing`'s account; both must show the same security code.
    private func link(_ device: CloakClient, to existing: CloakClient) async throws {
        let invitation = try await device.beginLink()
        async let pending = device.awaitLink(invitation, pollMillis: 100)
        let offer = try await existing.acceptLink(invitation.text)
        let link = try await pending
        // Both sides compare the codes and say so; the existing device commits only then.
        let same = link.shortAuthenticationString == offer.shortAuthenticationString
        async let joined: Void = device.confirmLink(link, codesMatch: same, pollMillis: 100)
        do { try await existing.completeLink(offer, codesMatch: same, pollMillis: 100) } catch {
            _ = try? await joined
            throw error
        }
        try await joined
        guard same else { throw ClientError.pairingNotCompleted }
    }

    /// What a person can do about a setup failure.
    static func advice(_ error: ClientError) -> String {
        switch error {
        case .server(.rateLimited):
            "the server limits registrations per address (raise it with cloak-server serve --registrations-per-address N)"
        case .server(.tooManyConnections):
            "the server limits connections (raise --max-connections-per-address or use fewer devices)"
        case .notConnected: "the server cannot be reached: check --server and that cloak-server is running"
        case .timeout: "the server did not answer in time: it may be overloaded; try fewer accounts"
        default: "see the server's log"
        }
    }
}
