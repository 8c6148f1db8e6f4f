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
        do { try device.open(clock: clock, configuration: configuration, verdicts: signatureVerdicts, logger: logger) } catch {
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

    /// Links `fresh` into `existing`'s account through the real two-sided flow: the existing
    /// device offers, the new one takes the offer; both must show the same code; then both say
    /// yes, the existing device adds the new one and the new one joins. `done` says whether it
    /// became a member.
    func link(_ fresh: SimDevice, via existing: SimDevice, done: @escaping (Bool) -> Void) {
        guard let engine = fresh.engine else { return done(false) }
        let invitation: LinkInvitation
        do { invitation = try engine.beginLink() } catch {
            notes.fail("link", "\(fresh.name) could not begin linking: \(error)")
            return done(false)
        }
        var codes: (offer: LinkOffer?, pending: PendingLink?) = (nil, nil)
        var joined = (fresh: false, existing: false)
        let joinedBoth = { [unowned self] in
            guard joined.fresh, joined.existing else { return }
            fresh.status = .member
            notes.linked += 1
            if fresh.online { fresh.engine?.startSync() }
            pump(fresh)
            done(true)
        }
        // The existing device gave up (a person would see its error): the new one stops
        // waiting for an answer that will not come, as its user would cancel.
        let abandon = { [unowned self] in
            guard fresh.status == .fresh, let engine = fresh.engine else { return }
            engine.stopSync()
            pump(fresh)
        }
        let compared = { [unowned self] in
            guard let offer = codes.offer, let pending = codes.pending else { return }
            if offer.shortAuthenticationString != pending.shortAuthenticationString {
                notes.fail("link", "\(fresh.name) and \(existing.name) show different codes")
                return done(false)
            }
            existing.flow({ $0.completeLink(offer, codesMatch: true, pollMillis: 200) }) { [unowned self] result in
                guard case .success = result else {
                    notes.flowFailed("complete link", existing.name, result)
                    return abandon()
                }
                joined.existing = true
                joinedBoth()
            }
            fresh.flow({ $0.confirmLink(pending, codesMatch: true, pollMillis: 200) }) { [unowned self] result in
                guard case .success = result else {
                    notes.flowFailed("confirm link", fresh.name, result)
                    return done(false)
                }
                joined.fresh = true
                joinedBoth()
            }
            pump(fresh)
            pump(existing)
        }
        fresh.flow({ $0.awaitLink(invitation, pollMillis: 200) }) { [unowned self] result in
            switch result {
            case .success(.pendingLink(let pending)):
                codes.pending = pending
                compared()
            default:
                notes.flowFailed("await link", fresh.name, result)
                done(false)
            }
        }
        existing.flow({ try $0.acceptLink(invitation.text) }) { [unowned self] result in
            switch result {
            case .success(.linkOffer(let offer)):
                codes.offer = offer
                compared()
            default:
                notes.flowFailed("accept link", existing.name, result)
                abandon()
            }
        }
        pump(fresh)
        pump(existing)
    }
}
