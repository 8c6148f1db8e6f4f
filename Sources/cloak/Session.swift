import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import CloakTransport
import Foundation
import Logging

/// Runs `body` with an open client, syncing first when `sync` is set; maps errors to messages
/// and exit codes.
func withClient(_ options: DeviceOptions, sync: Bool = true, _ body: (CloakClient) async throws -> Void) async throws {
    let client: CloakClient
    do { client = try options.open() } catch { fail(error) }
    do {
        if sync {
            await client.startSync()
            if !(await client.waitUntilSynced(timeout: .seconds(20))) {
                FileHandle.standardError.write(Data("cloak: could not finish syncing with \(options.server)\n".utf8))
            }
        }
        try await body(client)
        if sync { _ = await client.waitUntilSynced(timeout: .seconds(20)) }
        for event in try await client.recordedSecurityEvents().suffix(5) where sync {
            FileHandle.standardError.write(Data("cloak: security event: \(event.kind.rawValue) \(event.detail)\n".utf8))
        }
        try await client.close()
    } catch {
        try? await client.close()
        fail(error)
    }
}
