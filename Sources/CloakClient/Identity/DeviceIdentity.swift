@_spi(Randomness) public import CloakCrypto
@_spi(Randomness) public import CloakProtocol

/// This device's long-term keys: Ed25519 for signing, X25519 for receiving sealed epoch keys.
/// Created on first run and kept in a ``SecretStore``; the DeviceID is derived from the public
/// signing key.
///
/// ```swift
/// let identity = try DeviceIdentity.loadOrCreate(in: secrets, random: SystemRandom())
/// identity.id            // DeviceID
/// ```
public struct DeviceIdentity: Sendable {
    /// The signing key pair.
    public let signing: Ed25519PrivateKey
    /// The agreement key pair.
    public let agreement: X25519PrivateKey

    /// BLAKE2b-128 of the signing public key.
    public var id: DeviceID { DeviceID(signingKey: signing.publicKey) }

    static let signingName = "device-signing-seed"
    static let agreementName = "device-agreement-secret"

    /// Creates an identity from existing key pairs.
    public init(signing: Ed25519PrivateKey, agreement: X25519PrivateKey) {
        self.signing = signing
        self.agreement = agreement
    }

    /// Loads the identity, or creates and stores a new one on first run.
    package static func loadOrCreate(in store: any SecretStore, random: any RandomSource) throws(ClientError)
        -> DeviceIdentity
    {
        if let existing = try load(from: store) { return existing }
        let identity = DeviceIdentity(
            signing: Ed25519PrivateKey(using: random), agreement: X25519PrivateKey(using: random))
        try store.store(identity.signing.seed, named: signingName)
        try store.store(identity.agreement.secret, named: agreementName)
        return identity
    }

    /// Loads a stored identity, if there is one.
    public static func load(from store: any SecretStore) throws(ClientError) -> DeviceIdentity? {
        guard let seed = try store.load(named: signingName), let secret = try store.load(named: agreementName) else {
            return nil
        }
        do {
            return DeviceIdentity(
                signing: try Ed25519PrivateKey(seed: seed), agreement: try X25519PrivateKey(secret: secret))
        } catch {
            throw .storage("stored device keys are corrupt")
        }
    }
}
