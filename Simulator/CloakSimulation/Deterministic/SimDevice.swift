@_spi(Simulation) import CloakClient
@_spi(Randomness) import CloakCrypto
@_spi(Randomness) import CloakProtocol
import CloakServer
import Logging
@_spi(Randomness) import CloakTesting

/// One simulated device: a real ``ClientEngine`` over a simulated store and secrets, with its
/// own seeded cryptographic randomness. Crashing drops the engine; reopening builds a new one
/// over what the store committed, as a restarted app would.
final class SimDevice {
    enum Status: Equatable {
        /// Not (yet) part of an account.
        case fresh
        /// A member of its account.
        case member
        /// Removed from its account (it may not know yet).
        case removed
        /// Its own device-log branch lost to another after a restored server forgot the entries
        /// past the backup (a documented limit, PROTOCOL.md §18): it raised `deviceLogFork` and
        /// stopped, as it must; a person links it again.
        case forkedByRestore
    }

    let index: Int
    let account: Int
    let name: String
    let store = MemoryClientStore()
    let secrets = InMemorySecretStore()
    /// The device's operating-system randomness: it survives crashes (a reopened app does not
    /// replay the random bytes it drew before), so nonces never repeat.
    let random: DeterministicRandom
    var engine: ClientEngine?
    var status = Status.fresh
    /// The app wants background sync (false while "offline by choice").
    var online = true
    /// Connection generation: events of an older connection are dropped.
    var generation = 0
    var connection: ConnectionID?
    var scheduledTick: UInt64?
    /// Its effects are being carried out (see ``SimWorld/pump(_:)``).
    var pumping = false
    var flowCallbacks: [FlowID: (Result<FlowOutcome, ClientError>) -> Void] = [:]
    /// Every security event this device raised, in order.
    var events: [SecurityEvent] = []
    /// When it was removed (virtual ms), for the revocation check.
    var removedAt: UInt64?

    init(index: Int, account: Int, name: String, seed: UInt64) {
        self.index = index
        self.account = account
        self.name = name
        random = DeterministicRandom(seed: seed)
    }

    var isUp: Bool { engine != nil }

    /// Opens (or reopens after a crash) the engine.
    func open(
        clock: VirtualClock, configuration: ClientConfiguration, verdicts: SharedSignatureVerdicts, logger: Logger
    ) throws(ClientError) {
        // Every line names its device: a failure's log tail is read device by device.
        var logger = logger
        logger[metadataKey: "device"] = "\(name)"
        engine = try ClientEngine(
            store: store, secrets: secrets, configuration: configuration, clock: clock, random: random,
            verifier: SharedVerdictVerifier(verdicts), logger: logger)
    }

    /// Starts a flow and remembers what to do with its result.
    func flow(_ start: (ClientEngine) throws -> FlowID, then: @escaping (Result<FlowOutcome, ClientError>) -> Void) {
        guard let engine else { return then(.failure(.notConnected)) }
        do { flowCallbacks[try start(engine)] = then } catch {
            then(.failure(error as? ClientError ?? .notConnected))
        }
    }
}
