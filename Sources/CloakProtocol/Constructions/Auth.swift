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
        NonceSignature.message(.auth, serverNonce: serverNonce, account: account, device: device, version: version)
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
        NonceSignature.verify(.auth, signature, serverNonce: serverNonce, account: account, device: device, key: key)
    }
}

/// A member's proof, before authenticating, that it may read its account's device log
/// (PROTOCOL.md §11 "Fetching and pinning"): a removed device must read the signed removal,
/// and a device a restored server forgot must learn how much it forgot, but nobody else reads
/// the log before authenticating.
///
///     signed = "cloak.v1.log-access\0" ‖ LE32 version ‖ server nonce (32) ‖ account (32) ‖ device (16)
///
/// Its own domain: a proof can never pass as an authentication, nor the reverse (ADV-23).
public enum LogAccessProof {
    /// The exact bytes a device signs.
    public static func message(serverNonce: [UInt8], account: AccountID, device: DeviceID,
                               version: UInt32 = ProtocolVersion.current) -> [UInt8] {
        NonceSignature.message(.logAccess, serverNonce: serverNonce, account: account, device: device, version: version)
    }

    /// Signs a proof for this connection's nonce.
    public static func sign(serverNonce: [UInt8], account: AccountID, device: DeviceID, key: Ed25519PrivateKey)
        -> [UInt8]
    {
        key.signature(for: message(serverNonce: serverNonce, account: account, device: device))
    }

    /// Verifies a proof with the key the log lists for `device`.
    public static func verify(
        _ signature: [UInt8], serverNonce: [UInt8], account: AccountID, device: DeviceID, key: Ed25519PublicKey
    ) -> Bool {
        NonceSignature.verify(.logAccess, signature, serverNonce: serverNonce, account: account, device: device, key: key)
    }
}

/// The one layout both signatures over a connection's nonce share, told apart by their domain:
/// LE32 version ‖ server nonce (32) ‖ account (32) ‖ device (16).
private enum NonceSignature {
    static func message(
        _ domain: Domain, serverNonce: [UInt8], account: AccountID, device: DeviceID, version: UInt32
    ) -> [UInt8] {
        var w = CanonicalWriter(domain: domain, reserving: 116)
        w.u32(version)
        w.raw(serverNonce)
        w.fixed(account)
        w.fixed(device)
        return w.bytes
    }

    static func verify(
        _ domain: Domain, _ signature: [UInt8], serverNonce: [UInt8], account: AccountID, device: DeviceID,
        key: Ed25519PublicKey
    ) -> Bool {
        guard serverNonce.count == AuthChallenge.nonceByteCount, DeviceID(signingKey: key) == device else { return false }
        let signed = message(domain, serverNonce: serverNonce, account: account, device: device, version: ProtocolVersion.current)
        return key.isValidSignature(signature, for: signed)
    }
}
