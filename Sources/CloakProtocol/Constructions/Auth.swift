public import CloakCrypto

/// The authentication challenge-response (PROTOCOL.md §"Authentication"):
///
///     signed = "cloak.v1.auth\0" ‖ LE32 version ‖ server nonce (32) ‖ account (32) ‖ device (16)
///
/// The server nonce is fresh per connection, so a recorded response is useless later.
///
/// ```swift
/// let signature = AuthChallenge.sign(serverNonce: hello.nonce, account: a, device: d, key: k)
/// let ok = AuthChallenge.verify(signature, serverNonce: n, account: a, device: d, key: pk)
/// ```
public enum AuthChallenge {
    /// Server nonce length.
    public static let nonceByteCount = 32

    /// The exact bytes a device signs.
    public static func message(serverNonce: [UInt8], account: AccountID, device: DeviceID,
                               version: UInt32 = ProtocolVersion.current) -> [UInt8] {
        var w = CanonicalWriter(domain: .auth, reserving: 110)
        w.u32(version)
        w.raw(serverNonce)
        w.fixed(account)
        w.fixed(device)
        return w.bytes
    }

    /// Signs the challenge.
    public static func sign(serverNonce: [UInt8], account: AccountID, device: DeviceID, key: Ed25519PrivateKey)
        -> [UInt8]
    {
        key.signature(for: message(serverNonce: serverNonce, account: account, device: device))
    }

    /// Verifies a response.
    public static func verify(
        _ signature: [UInt8], serverNonce: [UInt8], account: AccountID, device: DeviceID, key: Ed25519PublicKey
    ) -> Bool {
        guard serverNonce.count == nonceByteCount, DeviceID(signingKey: key) == device else { return false }
        return key.isValidSignature(signature, for: message(serverNonce: serverNonce, account: account, device: device))
    }
}
