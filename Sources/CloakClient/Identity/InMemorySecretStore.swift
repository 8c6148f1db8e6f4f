public import CloakCrypto
import Synchronization

/// A ``SecretStore`` that keeps secrets in memory only: for the simulator's many devices and
/// for tests. Secrets vanish with the process, like a device that is wiped.
///
/// ```swift
/// let secrets = InMemorySecretStore()
/// ```
public final class InMemorySecretStore: SecretStore {
    private let secrets = Mutex<[String: SecretBytes]>([:])

    /// An empty store.
    public init() {}

    /// The secret under `name`.
    public func load(named name: String) throws(ClientError) -> SecretBytes? {
        secrets.withLock { $0[name] }
    }

    /// Stores a secret.
    public func store(_ secret: SecretBytes, named name: String) throws(ClientError) {
        secrets.withLock { $0[name] = secret }
    }

    /// Deletes a secret.
    public func delete(named name: String) throws(ClientError) {
        _ = secrets.withLock { $0.removeValue(forKey: name) }
    }
}
