import CloakCrypto
import CloakProtocol
import CloakSimulation
import Foundation
import Testing

@testable import CloakServer

/// Registry rules of a shared store that need a read to straddle commits, driven step by step.
@Suite struct SharedStoreRegistryTests {
    /// A load that read the account before a removal and finishes after the cache reflects it
    /// must not install its older copy: the removed device would be active again.
    @Test func aLoadOlderThanTheCacheIsNeverInstalled() throws {
        let (first, second, store) = twoSharedProcesses()
        var account = TestAccount.make(seed: 99, devices: 2)
        let owner = registerWithEveryDevice(account, on: first)
        let phone = CoreClient(second)
        phone.login(account, device: 0)
        let old = try #require(store.accountNow(account.account))  // read before the removal ...

        owner.send(Frames.appendDeviceLog(account.removeDevice(1), id: 3))
        second.remoteCommit(account.account)
        _ = phone.send(Frames.fetchKeyEnvelopes(id: 4))  // the second process reloads: device 1 is gone
        let removedAt = try #require(store.accountNow(account.account)).version
        #expect(removedAt > old.version)

        // ... and finishes now, after another announcement marked the account for reload.
        second.registry.remoteCommit(account.account, version: removedAt)
        let installed = second.registry.installLoaded(
            ConnectionID(rawValue: 999), account: account.account, record: old,
            log: try second.registry.verifiedLog(of: old))
        #expect(installed.stale)
        if case .ready(let log) = second.registry.lookup(account.account) {
            #expect(!log.isActive(account.devices[1].id, atIndex: log.headIndex))
        }
        let laptop = CoreClient(second)
        #expect(laptop.login(account, device: 1) == nil)
        #expect(laptop.closedWith == .deviceNotActive)
    }
}
