import CloakCrypto
public import CloakProtocol
import Foundation
import SwiftProtobuf

extension CloakClient {
    /// Sets a random recovery secret and returns it as 12 words to show the user once. With
    /// them, a fresh device can restore the account (``recover(words:)``).
    public func setUpRecoveryWords() async throws(ClientError) -> String {
        let secret = RecoverySecret.random(using: core.random)
        try await installRecoveryKey(secret.keys, kdfParameters: RecoverySecret.wordsParameterMarker)
        return secret.words
    }

    /// Sets a recovery passphrase (Argon2id with a fresh salt and Cloak's default parameters,
    /// stored on the server with the account; PROTOCOL.md §"Recovery").
    public func setUpRecoveryPassphrase(_ passphrase: String) async throws(ClientError) {
        let parameters = PasswordKDFParameters.recommended(using: core.random)
        let keys: RecoveryKeys
        do { keys = try RecoveryKeys(passphrase: passphrase, parameters: parameters) } catch { throw .crypto(error) }
        try await installRecoveryKey(keys, kdfParameters: parameters.encoded)
    }

    private func installRecoveryKey(_ keys: RecoveryKeys, kdfParameters: [UInt8]) async throws(ClientError) {
        var session = try await authenticatedSession()
        let connection = session.connection
        defer { Task { await connection.close() } }
        let entry = try await append(in: &session) { () throws(ClientError) in try core.prepareSetRecovery(keys) }
        let envelopes = try core.commitAppended(entry)
        _ = try await session.request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.message) }))
        guard let account = core.account?.account else { throw .noAccount }
        var blob = Cloak_V1_RecoveryBlob()
        blob.accountID = Data(account.bytes)
        blob.recoveryKeyID = Data(keys.id.bytes)
        blob.kdfParameters = Data(kdfParameters)
        _ = try await session.request(.putRecovery(.with { $0.blob = blob }))
    }

    /// Restores the account on this fresh device from recovery words: the device joins the
    /// device log as a new device (signed by the recovery key) and receives every epoch key.
    public func recover(words: String) async throws(ClientError) {
        let secret: RecoverySecret
        do { secret = try RecoverySecret(words: words) } catch { throw .recoveryWords(error) }
        let keys = secret.keys
        try await recover(keys: { _ throws(ClientError) in keys }, lookup: .with { $0.recoveryKeyID = Data(keys.id.bytes) })
    }

    /// Restores the account on this fresh device from its passphrase. The account id is needed
    /// because a passphrase alone does not identify an account. A wrong passphrase fails
    /// locally after the Argon2id cost, without the server learning whether it was right.
    public func recover(account: AccountID, passphrase: String) async throws(ClientError) {
        try await recover(keys: { blob throws(ClientError) in
            let parameters: PasswordKDFParameters
            do throws(CryptoError) { parameters = try PasswordKDFParameters(decoding: Array(blob.kdfParameters)) } catch {
                // Below-floor or unknown parameters are a downgrade attempt (ADV-25).
                throw .crypto(error)
            }
            do throws(CryptoError) { return try RecoveryKeys(passphrase: passphrase, parameters: parameters) } catch {
                throw .crypto(error)
            }
        }, lookup: .with { $0.accountID = Data(account.bytes) })
    }

    private func recover(
        keys derive: (Cloak_V1_RecoveryBlob) throws(ClientError) -> RecoveryKeys, lookup: Cloak_V1_FetchRecovery
    ) async throws(ClientError) {
        guard core.account == nil else { throw .alreadyInitialized }
        var session = try await ServerSession.open(transport: transport, url: server, configuration: configuration)
        let connection = session.connection
        defer { Task { await connection.close() } }
        let reply: Cloak_V1_Frame.OneOf_Body
        do throws(ClientError) { reply = try await session.request(.fetchRecovery(lookup)) } catch {
            if case .server(.notFound) = error { throw .wrongRecoverySecret }
            throw error
        }
        guard case .recoveryBlob(let blob) = reply else { throw .server(.unexpectedFrame("expected RecoveryBlob")) }
        let keys = try derive(blob)
        let account: AccountID
        do { account = try AccountID(validating: blob.accountID, field: "account_id") } catch {
            throw .server(.unexpectedFrame("RecoveryBlob with a malformed account id"))
        }
        guard case .deviceLogEntries(let served) = try await session.request(.fetchDeviceLog(.with {
            $0.accountID = Data(account.bytes)
        })) else { throw .server(.unexpectedFrame("expected DeviceLogEntries")) }
        var log: DeviceLog
        do {
            log = try DeviceLog(verifying: served.entries.map { w throws(ProtocolError) in try DeviceLogEntry(wire: Array(w)) })
        } catch { throw .deviceLog(.invalid(error)) }
        guard log.account == account else { throw .deviceLog(.invalid(.invalidDeviceLog("log of another account"))) }
        guard let recovery = log.recoveryKey else { throw .noRecoveryKey }
        guard recovery.id == keys.id else { throw .wrongRecoverySecret }
        try await session.authenticate(account: account, device: keys.id, key: keys.signing)
        guard case .keyEnvelopes(let list) = try await session.request(.fetchKeyEnvelopes(Cloak_V1_FetchKeyEnvelopes()))
        else { throw .server(.unexpectedFrame("expected KeyEnvelopes")) }
        var epochKeys: [UInt64: SymmetricKey] = [:]
        for message in list.envelopes {
            guard let envelope = try? KeyEnvelope(message: message),
                case .opened(let key) = ClientCore.openEnvelope(envelope, log: log, recipient: keys.id, key: keys.agreement)
            else { continue }
            epochKeys[envelope.epoch] = epochKeys[envelope.epoch] ?? key
        }
        guard epochKeys[log.currentEpoch] != nil else { throw .missingEpochKey(log.currentEpoch) }
        let entry = DeviceLogEntry.add(
            .addDevice, signingKey: core.identity.signing.publicKey, agreementKey: core.identity.agreement.publicKey,
            after: log, signer: keys.signing, createdAtMs: core.now())
        _ = try await session.request(.appendDeviceLog(.with { $0.entry = Data(entry.wire) }))
        do { try log.append(entry) } catch { throw .server(error) }
        var envelopes: [KeyEnvelope] = []
        for (epoch, key) in epochKeys.sorted(by: { $0.key < $1.key }) {
            do {
                envelopes.append(try KeyEnvelope.seal(
                    key, epoch: epoch, account: account, recipient: core.me, recipientKey: core.identity.agreement.publicKey,
                    sender: keys.id, signer: keys.signing, random: core.random))
            } catch { throw .crypto(error) }
        }
        _ = try await session.request(.putKeyEnvelopes(.with { $0.envelopes = envelopes.map(\.message) }))
        try core.adopt(log: log, keys: epochKeys)
    }
}
