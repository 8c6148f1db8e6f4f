@_spi(Simulation) import CloakClient
import CloakCrypto
import CloakProtocol
import CloakServer
import Foundation

// The hostile server's KDF downgrade (ADV-25, issue 24's hostile list): during a passphrase
// recovery it serves the enrollment's Argon2id parameters weakened below Cloak's floors, which
// would make every guess of the passphrase cheap. The recovering device must refuse with the
// floor's error and recover nothing.
extension SimWorld {
    /// The simulated server's configuration: the defaults, with recovery (OPRF) keys from the
    /// seed when the run tries a KDF downgrade (passphrase recovery is then offered).
    static func serverConfiguration(_ options: SimOptions) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        guard options.kdfDowngrade else { return configuration }
        let seed = options.seed
        var random = SimRandom(seed: seed ^ 0x0A2F_0000_0000_0022)
        let key = (0..<4).flatMap { _ in random.next().littleEndianBytes }
        configuration.recoveryKeys = try? RecoveryKeySet(seeds: [1: SecretBytes(copying: key)], current: 1)
        return configuration
    }

    /// Per account, sometimes: a device sets a recovery passphrase, then a fresh device recovers
    /// with it while the server weakens the parameters it serves. Decided from a stream of its
    /// own (runs without a hostile server draw nothing new).
    func scheduleKDFDowngrades() {
        var random = SimRandom(seed: options.seed ^ 0x0A26_0D0F_0000_0025)
        let window = Int(options.workloadMillis)
        for account in 0..<options.accounts where random.chance(0.5) {
            let at = UInt64(random.below(max(1, window / 2)))
            schedule(after: at) { world in world.attemptKDFDowngrade(account) }
        }
    }

    private func attemptKDFDowngrade(_ account: Int) {
        guard let device = members(of: account).first, let engine = device.engine, let accountID = engine.accountID,
            devices.filter({ $0.account == account && $0.status == .member }).count < 5
        else { return }
        let passphrase = "\(options.seed) quartz lantern orbit mosaic velvet harbor thistle \(account)"
        notes.count("kdf downgrade setup")
        device.flow({ try $0.setUpRecoveryPassphrase(passphrase, replacing: true) }) { [unowned self] result in
            guard case .success = result else {
                notes.count("kdf downgrade setup failed")
                return notes.flowFailed("passphrase setup", device.name, result)
            }
            let fresh = addDevice(account: account)
            kdfDowngrades[fresh.index] = false
            fresh.flow({ try $0.recover(account: accountID, passphrase: passphrase) }) { [unowned self] result in
                let weakened = kdfDowngrades.removeValue(forKey: fresh.index) ?? false
                finishDowngradedRecovery(fresh, weakened: weakened, result)
            }
            pump(fresh)
        }
        pump(device)
    }

    private func finishDowngradedRecovery(_ fresh: SimDevice, weakened: Bool, _ result: Result<FlowOutcome, ClientError>) {
        switch result {
        case .failure(.crypto(.passwordParametersBelowFloor)) where weakened:
            notes.detections["kdf downgrade", default: 0] += 1
        case .success where !weakened:
            // The server answered before its window (or the evaluation never passed it): an
            // honest recovery, and a member like any other.
            fresh.status = .member
            notes.recovered += 1
            if fresh.online { fresh.engine?.startSync() }
            return pump(fresh)
        case .success:
            notes.fail("integrity", "\(fresh.name) recovered with Argon2id parameters below the floors (ADV-25)")
        case .failure(let error):
            if weakened {
                notes.fail("integrity", "\(fresh.name) refused weakened Argon2id parameters with \(error), not the floor's error")
            } else {
                notes.count("kdf downgrade recovery failed before the evaluation")
                notes.flowFailed("recover with passphrase", fresh.name, result)
            }
        }
        fresh.engine?.stopSync()
        pump(fresh)
    }

    /// The hostile server's side: a `RecoveryEvaluation` to a device recovering under the
    /// downgrade gets one Argon2id pass over 8 KiB instead of what the account enrolled.
    func downgradeKDF(_ device: Int, _ direction: Direction, _ bytes: [UInt8]) -> [UInt8] {
        guard direction == .toClient, kdfDowngrades[device] != nil,
            var frame = try? FrameCodec.decode(bytes, maxFrameBytes: 1 << 24),
            case .recoveryEvaluation(var evaluation) = frame.body
        else { return bytes }
        var parameters = Array(evaluation.kdfParameters)
        guard parameters.count == RecoveryEnrollment.encodedByteCount else { return bytes }
        parameters.replaceSubrange(5..<9, with: UInt32(1).littleEndianBytes)
        parameters.replaceSubrange(9..<13, with: UInt32(8).littleEndianBytes)
        evaluation.kdfParameters = Data(parameters)
        frame.body = .recoveryEvaluation(evaluation)
        kdfDowngrades[device] = true
        fault("kdf downgrade")
        return FrameCodec.encode(frame)
    }
}
