@_spi(Simulation) import CloakClient
import CloakCrypto
import CloakProtocol

extension SimWorld {
    /// A new device of `account` (opened, not yet a member).
    @discardableResult
    func addDevice(account: Int) -> SimDevice {
        let index = devices.count
        let name = "a\(account)d\(devices.filter { $0.account == account }.count)"
        let device = SimDevice(index: index, account: account, name: name, seed: rng.next())
        devices.append(device)
        do { try device.open(clock: clock, configuration: configuration, logger: logger) } catch {
            notes.fail("open", "\(name) could not open its store: \(error)")
        }
        return device
    }

    /// The account's members that are up.
    func members(of account: Int) -> [SimDevice] {
        devices.filter { $0.account == account && $0.status == .member && $0.isUp }
    }

    /// Creates every account through the server (the first device registers, the others link
    /// through the pairing mailbox), then starts sync everywhere.
    func setUpAccounts() {
        for account in 0..<options.accounts {
            let first = addDevice(account: account)
            first.flow({ $0.createAccount() }) { [unowned self] result in
                guard case .success = result else {
                    return notes.fail("setup", "\(first.name) could not create its account: \(result)")
                }
                first.status = .member
                first.engine?.startSync()
                pump(first)
                linkDevices(account: account, remaining: options.devices - 1, via: first)
            }
            pump(first)
        }
    }

    private func linkDevices(account: Int, remaining: Int, via existing: SimDevice) {
        guard remaining > 0 else { return }
        let fresh = addDevice(account: account)
        link(fresh, via: existing) { [unowned self] linked in
            if linked { linkDevices(account: account, remaining: remaining - 1, via: existing) }
        }
    }

    /// Links `fresh` into `existing`'s account: the new device waits in the pairing mailbox,
    /// the existing one accepts, both must show the same code; then the new device confirms
    /// and syncs. `done` says whether it became a member.
    func link(_ fresh: SimDevice, via existing: SimDevice, done: @escaping (Bool) -> Void) {
        guard let engine = fresh.engine else { return done(false) }
        let invitation: LinkInvitation
        do { invitation = try engine.beginLink() } catch {
            notes.fail("link", "\(fresh.name) could not begin linking: \(error)")
            return done(false)
        }
        var codes: (accepted: String?, pending: PendingLink?) = (nil, nil)
        let finish = { [unowned self] in
            guard let code = codes.accepted, let pending = codes.pending else { return }
            if code != pending.shortAuthenticationString {
                notes.fail("link", "\(fresh.name) and \(existing.name) show different codes")
                return done(false)
            }
            do { try fresh.engine?.confirmLink(pending) } catch {
                notes.fail("link", "\(fresh.name) could not confirm: \(error)")
                return done(false)
            }
            fresh.status = .member
            notes.linked += 1
            if fresh.online { fresh.engine?.startSync() }
            pump(fresh)
            done(true)
        }
        fresh.flow({ $0.awaitLink(invitation, pollMillis: 200) }) { [unowned self] result in
            switch result {
            case .success(.pendingLink(let pending)):
                codes.pending = pending
                finish()
            default:
                notes.flowFailed("await link", fresh.name, result)
                done(false)
            }
        }
        existing.flow({ try $0.acceptLink(invitation.text) }) { [unowned self] result in
            switch result {
            case .success(.linkCode(let code)):
                codes.accepted = code
                finish()
            default:
                notes.flowFailed("accept link", existing.name, result)
            }
        }
        pump(fresh)
        pump(existing)
    }
}
