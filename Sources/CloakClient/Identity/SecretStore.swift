public import CloakCrypto

/// Where a device keeps its secrets: its signing and agreement keys and the local storage key.
///
/// ```swift
/// let secrets = try FileSecretStore(directory: storeURL.appendingPathComponent("secrets"))
/// try secrets.store(SecretBytes.random(count: 32), named: "storage-key")
/// let key = try secrets.load(named: "storage-key")
/// ```
///
/// On Apple platforms an implementation over the Keychain (`kSecClassGenericPassword`,
/// `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`), on Android one over the Keystore, would
/// conform to this protocol; Linux and the tests use ``FileSecretStore``.
public protocol SecretStore: Sendable {
    /// The secret stored under `name`, or nil if there is none.
    func load(named name: String) throws(ClientError) -> SecretBytes?
    /// Stores (or replaces) a secret durably.
    func store(_ secret: SecretBytes, named name: String) throws(ClientError)
    /// Deletes a secret; deleting a missing one is not an error.
    func delete(named name: String) throws(ClientError)
}
